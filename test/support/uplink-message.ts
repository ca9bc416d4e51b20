import type { UplinkMessage } from '../../firmware/uplink/types.js';

/**
 * A message as the pump would hand it to a transport, for tests that drive a transport directly: record
 * `seq` of lane upstream from `deviceId`, with message id `<gatewayId>:upstream:<seq>`.
 */
export function uplinkMessage(gatewayId: string, seq: number, deviceId: string, body: Buffer): UplinkMessage {
  return {
    messageId: `${gatewayId}:upstream:${seq}`,
    lane: 'upstream',
    seq,
    deviceId,
    enqueuedAtMs: Date.now(),
    contentType: '',
    contentEncoding: '',
    properties: {},
    body,
  };
}
