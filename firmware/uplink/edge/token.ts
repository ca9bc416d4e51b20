import { createHmac } from 'node:crypto';

/**
 * How a transparent gateway authenticates to IoT Hub on behalf of a child (what edgeHub does with the C# SDK's
 * ClientAuthenticationForEdgeHubOnBehalfOf): the child's connection carries a SAS token whose resource is the
 * gateway's `$edgeHub` module, signed with that module's key, and IoT Hub checks that the child is in the
 * gateway's device scope. The MQTT CONNECT names the child itself (client id and user name), so IoT Hub stamps
 * the child's id on everything sent on that connection.
 */

/** The module whose credentials sign every on-behalf-of token (IoT Edge's name for its hub module). */
export const EDGE_HUB_MODULE_ID = '$edgeHub';

/**
 * Lifetime of one on-behalf-of token, seconds: an hour, as the C# SDK's ClientAuthenticationForEdgeHubOnBehalfOf
 * signs them. Shorter costs a reconnect per child more often; longer leaves a leaked token valid longer.
 */
export const ON_BEHALF_OF_TOKEN_TTL_SECS = 3_600;
/**
 * A connection is renewed (closed and opened with a fresh token) once this share of its token's lifetime is
 * left: the C# SDK's default renewal buffer is 15 %. IoT Hub closes a connection whose token expired.
 */
export const TOKEN_RENEWAL_SHARE = 0.15;

/** The `$edgeHub` module's credentials (board.json's uplink.azure.edgeHubConnectionStringFile, azure-mode.ts). */
export interface EdgeHubCredentials {
  hostName: string;
  /** The gateway's device id (the module's DeviceId). */
  gatewayId: string;
  /** Base64 `$edgeHub` module key. */
  key: string;
}

/**
 * A view of credentials that change (a provisioned gateway sets its module up after its first connect, and
 * again on the hub a re-provisioning moves it to): every read is of the current ones; an empty key and host
 * until there are any.
 */
export function liveEdgeHubCredentials(
  current: () => EdgeHubCredentials | null,
  gatewayId: string,
): EdgeHubCredentials {
  return {
    get hostName() {
      return current()?.hostName ?? '';
    },
    gatewayId,
    get key() {
      return current()?.key ?? '';
    },
  };
}

/** `<hub>/devices/<gw>/modules/$edgeHub`, the audience of every on-behalf-of token. */
export function onBehalfOfResource(credentials: EdgeHubCredentials): string {
  return `${credentials.hostName}/devices/${credentials.gatewayId}/modules/${EDGE_HUB_MODULE_ID}`;
}

/** A SAS token (HMAC-SHA256 of "<url-encoded resource>\n<expiry>" under the key) valid until `expirySecs`. */
export function onBehalfOfToken(credentials: EdgeHubCredentials, expirySecs: number): string {
  const resource = encodeURIComponent(onBehalfOfResource(credentials));
  const signature = createHmac('sha256', Buffer.from(credentials.key, 'base64'))
    .update(`${resource}\n${expirySecs}`)
    .digest('base64');
  return `SharedAccessSignature sr=${resource}&sig=${encodeURIComponent(signature)}&se=${expirySecs}`;
}

/** A child device `dev` or a module `dev/mod` (edgeHub's identity ids); modules of children too. */
export interface IdentityId {
  deviceId: string;
  moduleId: string | undefined;
}

export function splitIdentity(identity: string): IdentityId {
  const slash = identity.indexOf('/');
  if (slash < 0) return { deviceId: identity, moduleId: undefined };
  return { deviceId: identity.slice(0, slash), moduleId: identity.slice(slash + 1) };
}

/**
 * The authentication chain edgeHub ≥ 1.2 sends in the MQTT user name (`&auth-chain=`): the target identity
 * first, then each gateway up to the one that holds the connection, separated by `;` (iotedge's
 * AuthChainHelpers: the first id is the target, the last the actor). A module's target is `<device>/<module>`.
 */
export function authChain(identity: string, gatewayId: string): string {
  const { deviceId, moduleId } = splitIdentity(identity);
  const chain = [identity];
  if (moduleId !== undefined && deviceId !== gatewayId) chain.push(deviceId);
  chain.push(gatewayId);
  return chain.join(';');
}
