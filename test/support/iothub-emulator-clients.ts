import { createHmac } from 'node:crypto';
import https from 'node:https';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { EDGE_HUB_MODULE_ID, SCOPE_API_VERSION, type IotHubEmulator } from './iothub-emulator.js';

/** Clients of the IoT Hub emulator built the way a device or edgeHub builds them, for its tests. */

// azure-iot-device is CommonJS and re-exports through getters Node's ESM loader cannot see.
const { Client, ModuleClient, SharedAccessSignatureAuthenticationProvider } = azureDevice;
export const NO_RETRY = { shouldRetry: () => false, nextRetryTimeout: () => -1 };

/** A SAS token as the service documents it, signed here rather than by outpost or the SDK under test. */
export function sasToken(
  resource: string,
  keyBase64: string,
  expirySecs = Math.floor(Date.now() / 1000) + 3600,
): string {
  const sr = encodeURIComponent(resource);
  const sig = createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${sr}\n${expirySecs}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expirySecs}`;
}

export function edgeHubKey(hub: IotHubEmulator, gatewayId: string): string {
  return hub.registry.module(gatewayId, EDGE_HUB_MODULE_ID)!.authentication.symmetricKey.primaryKey!;
}

/** A client that connects as `deviceId` (or its module) with a token for another resource, as edgeHub does. */
export async function onBehalfOf(hub: IotHubEmulator, deviceId: string, token: string, moduleId?: string) {
  const credentials = { host: hub.hostName, deviceId, ...(moduleId ? { moduleId } : {}), sharedAccessSignature: token };
  const provider = new SharedAccessSignatureAuthenticationProvider(credentials);
  const client =
    moduleId === undefined
      ? Client.fromAuthenticationProvider(provider, Mqtt)
      : ModuleClient.fromAuthenticationProvider(provider, Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: hub.ca.cert });
  return client;
}

/** One device-scope API call over HTTPS as edgeHub's NestedDeviceScopeApiClient makes it. */
export async function scopeRequest(
  hub: IotHubEmulator,
  gatewayId: string,
  body: unknown,
  options: { authorization?: string; call?: string } = {},
): Promise<{ status: number; body: any }> {
  const call = options.call ?? 'devicesAndModulesInTargetDeviceScope';
  const authorization =
    options.authorization ??
    sasToken(`${hub.hostName}/devices/${gatewayId}/modules/${EDGE_HUB_MODULE_ID}`, edgeHubKey(hub, gatewayId));
  const path =
    `/devices/${gatewayId}/modules/${encodeURIComponent(EDGE_HUB_MODULE_ID)}/${call}` +
    `?api-version=${SCOPE_API_VERSION}`;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: hub.port,
        servername: 'localhost',
        ca: hub.ca.cert,
        path,
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
