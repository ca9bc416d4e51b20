import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { makeSasToken } from '../../firmware/auth/sas.js';
import { SCOPE_SCHEMA } from '../../firmware/auth/identity.js';
import type { ResyncHook } from '../../firmware/uplink/pump-options.js';
import { createTestCa, type TestCa } from './tls-certs.js';
export { until } from './until.js';

/** Shared pieces of the hub tests: a CA with a hub server certificate on disk, scope documents, children. */

export const HUB_HOST = 'myhub.example.net';

export function newKey(): string {
  return randomBytes(32).toString('base64');
}

export interface HubCerts {
  ca: TestCa;
  certPath: string;
  keyPath: string;
}

export async function hubCerts(dir: string): Promise<HubCerts> {
  const ca = await createTestCa();
  const server = await ca.issue('localhost', ['localhost', '127.0.0.1']);
  const certPath = path.join(dir, 'hub.crt');
  const keyPath = path.join(dir, 'hub.key');
  await writeFile(certPath, server.cert);
  await writeFile(keyPath, server.key);
  return { ca, certPath, keyPath };
}

export interface ChildSpec {
  deviceId: string;
  key?: string;
  status?: 'enabled' | 'disabled';
  auth?: Record<string, unknown>;
}

export function scopeDocument(
  gatewayId: string,
  version: number,
  children: ChildSpec[],
  extra: Record<string, unknown> = {},
) {
  return {
    schema: SCOPE_SCHEMA,
    gatewayId,
    version,
    hubHostName: HUB_HOST,
    devices: children.map((c) => ({
      deviceId: c.deviceId,
      status: c.status ?? 'enabled',
      version: 1,
      auth: c.auth ?? { type: 'sas', primaryKey: c.key },
    })),
    ...extra,
  };
}

/** Collects resync hooks the way the uplink service will, for a Pump built by the test. */
export class HookList {
  readonly hooks: ResyncHook[] = [];
  addResyncHook(hook: ResyncHook): void {
    this.hooks.push(hook);
  }
}

export function sasPassword(deviceId: string, key: string, opts: { host?: string; expirySecs?: number } = {}): string {
  const expiry = opts.expirySecs ?? Math.floor(Date.now() / 1000) + 3600;
  return makeSasToken(`${opts.host ?? HUB_HOST}/devices/${deviceId}`, key, expiry);
}

/** A plain mqtt.js child speaking the IoT Hub dialect; rejects with the CONNACK error when refused. */
export async function mqttChild(
  port: number,
  deviceId: string,
  password: string,
  opts: { host?: string; clientId?: string } = {},
): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: opts.clientId ?? deviceId,
    username: `${opts.host ?? HUB_HOST}/${deviceId}/?api-version=2021-04-12`,
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
}

/**
 * One connect attempt of child `deviceId` to a hub that may not be up yet (a gateway booting in a VM): the
 * client once connected, or the client (to end) and why not. Waiting and retrying is the caller's.
 */
export async function childConnectAttempt(
  port: number,
  deviceId: string,
  key: string,
  connectTimeoutMs: number,
): Promise<{ client: MqttClient; error: Error | null }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId: deviceId,
    username: `${HUB_HOST}/${deviceId}/?api-version=2021-04-12`,
    password: sasPassword(deviceId, key),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: connectTimeoutMs,
  });
  const error = await new Promise<Error | null>((res) => {
    client.once('connect', () => res(null));
    client.once('error', (err) => res(err));
    client.once('close', () => res(new Error('closed before CONNACK')));
  });
  client.on('error', () => {});
  return { client, error };
}

/** Publishes what the hub must refuse and resolves once it has closed the connection (MQTT 3.1.1 has no refusal). */
export async function publishRefused(client: MqttClient, topic: string, payload: string | Buffer): Promise<void> {
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.publish(topic, payload, { qos: 1 });
  await closed;
}
