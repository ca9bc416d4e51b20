import tls from 'node:tls';
import { once } from 'node:events';
import { createHmac, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import { createTestCa, type TestCa } from './tls-certs.js';

/**
 * An Azure IoT Hub Device Provisioning Service stand-in for tests, written from DPS's documented MQTT
 * protocol ("Communicate with DPS using MQTT", learn.microsoft.com/azure/iot-dps/iot-dps-mqtt-support) and
 * its REST reference for the registration result: aedes over TLS on loopback, reached by the real
 * azure-iot-provisioning-device SDK with `provisioningHost = localhost:<port>` (its MQTT transport dials
 * `mqtts://<provisioningHost>`, so a port in the host reaches us, as with the IoT Hub emulator).
 *
 * - CONNECT: client id = registration id, username `<idScope>/registrations/<registrationId>/api-version=...`,
 *   password a SAS token (symmetric key) or none with a client certificate (X.509, checked at CONNECT: an
 *   untrusted certificate gets CONNACK 5, as DPS does).
 * - `$dps/registrations/PUT/iotdps-register/?$rid=<rid>` with `{registrationId, payload?}`: the SAS token is
 *   checked here (audience `<idScope>/registrations/<registrationId>`, `skn=registration`, HMAC-SHA256 with
 *   the individual key or the group key's derivation), as DPS does (a bad token is answered 401, not refused
 *   at CONNECT); answer 202 `{operationId, status: "assigning"}` with `retry-after`, or 429 when throttled.
 * - `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=<rid>&operationId=<id>`: 202 "assigning" for
 *   `assigningPolls` polls, then 200 with `{operationId, status, registrationState: {registrationId,
 *   assignedHub, deviceId, status, substatus, createdDateTimeUtc, lastUpdatedDateTimeUtc, etag}}`; a disabled
 *   enrollment's status is "disabled" (one of the DeviceRegistrationResult statuses).
 *
 * Enrollments: individual (symmetric key or X.509 certificate), groups (symmetric group key, or an X.509 CA
 * whose certificates carry CN = registration id), any of them disabled. Allocation: to the enrollment's hub
 * (or the first hub); `reassign` moves a device to another hub, deleting it from the old one, as an
 * operator does when re-homing a device; its next registration then lands on the new hub.
 */

/** What DPS does on the hub when it assigns a device: create the device with this authentication. */
export interface HubBinding {
  hostName: string;
  /** `iotEdge`: the enrollment's capabilities.iotEdge, so the hub creates an IoT Edge device (and its modules). */
  register(deviceId: string, auth: { kind: 'sas'; key: string } | { kind: 'x509' }, iotEdge: boolean): void;
  unregister(deviceId: string): void;
}

/** What every enrollment may say besides its attestation (DPS's enrollment fields of those names). */
interface EnrollmentCommon {
  enabled?: boolean;
  hub?: string;
  /** DPS's `capabilities.iotEdge`: the device is created on its hub as an IoT Edge device. */
  capabilities?: { iotEdge: boolean };
}

export type Enrollment = EnrollmentCommon &
  (
    | { kind: 'symmetric-group'; name: string; groupKey: string }
    | { kind: 'symmetric'; registrationId: string; key: string; deviceId?: string }
    | { kind: 'x509-group'; name: string; caCert: string }
    | { kind: 'x509'; registrationId: string; cert: string; deviceId?: string }
  );

/** Registrations a test can count; a test needing more is doing something else. */
const REQUESTS_KEPT_MAX = 10_000;

interface Registration {
  hub: string;
  deviceId: string;
  createdAt: string;
}

interface Operation {
  registrationId: string;
  enrollment: Enrollment;
  pollsLeft: number;
}

interface Session {
  registrationId: string;
  password: string | undefined;
  cert: X509Certificate | undefined;
}

export class DpsEmulator {
  /** Every register request, by registration id, in arrival order, and when it came (Date.now()). */
  readonly requests: string[] = [];
  readonly requestTimesMs: number[] = [];
  private readonly enrollments: Enrollment[] = [];
  private readonly registrations = new Map<string, Registration>();
  private readonly operations = new Map<string, Operation>();
  private readonly sessions = new Map<Client, Session>();
  /** Where `reassign` sent a device: its next registration lands there. */
  private readonly movedTo = new Map<string, string>();
  private throttled: { left: number; retryAfterSecs: number } = { left: 0, retryAfterSecs: 0 };
  /** `retry-after` on 202 answers, seconds (DPS sends about 3; tests want quick polls). */
  retryAfterSecs = 1;
  /** Polls answered "assigning" before the result, so the SDK's polling is exercised. */
  assigningPolls = 1;

  private constructor(
    readonly idScope: string,
    readonly ca: TestCa,
    private readonly hubs: Map<string, HubBinding>,
    private readonly broker: Aedes,
    private readonly server: tls.Server,
    readonly port: number,
  ) {}

  static async start(opts: { idScope: string; hubs: HubBinding[] }): Promise<DpsEmulator> {
    const ca = await createTestCa();
    const serverCert = await ca.issue('localhost', ['localhost', '127.0.0.1']);
    const broker = await Aedes.createBroker();
    // Client certificates are asked for but judged against the enrollments in `authenticate`.
    const server = tls.createServer({ ...serverCert, requestCert: true, rejectUnauthorized: false });
    server.on('secureConnection', (socket) => broker.handle(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const hubs = new Map(opts.hubs.map((hub) => [hub.hostName, hub]));
    const dps = new DpsEmulator(opts.idScope, ca, hubs, broker, server, port);
    broker.authenticate = (client, username, password, done) =>
      done(null, dps.authenticate(client, username, password));
    broker.authorizeSubscribe = (_client, sub, done) =>
      done(sub.topic === '$dps/registrations/res/#' ? null : new Error('topic'), sub);
    broker.on('publish', (packet, client) => client !== null && dps.onRequest(client, packet));
    broker.on('clientDisconnect', (client) => dps.sessions.delete(client));
    return dps;
  }

  /** What devices set as provisioningHost. */
  get endpoint(): string {
    return `localhost:${this.port}`;
  }

  addEnrollment(enrollment: Enrollment): void {
    this.enrollments.push(enrollment);
  }

  /** The hub a registration id is assigned to, if any. */
  assignment(registrationId: string): Registration | undefined {
    return this.registrations.get(registrationId);
  }

  /** Moves a provisioned device to another hub: deleted on the old one, assigned to `hub` when it registers. */
  reassign(registrationId: string, hub: string): void {
    const current = this.registrations.get(registrationId);
    if (current === undefined) throw new Error(`${registrationId} was never assigned`);
    if (!this.hubs.has(hub)) throw new Error(`no hub ${hub}`);
    this.hubs.get(current.hub)!.unregister(current.deviceId);
    this.movedTo.set(registrationId, hub);
  }

  /** The next `count` register requests get 429 with this `retry-after`. */
  throttle(count: number, retryAfterSecs: number): void {
    this.throttled = { left: count, retryAfterSecs };
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    this.server.close();
    await once(this.server, 'close');
    await this.ca.dispose();
  }

  private authenticate(client: Client, username: string | undefined, password: Buffer | undefined): boolean {
    const match = /^([^/]+)\/registrations\/([^/]+)\/api-version=/.exec(username ?? '');
    if (match === null || match[1] !== this.idScope || match[2] !== client.id) return false;
    const socket = client.conn as tls.TLSSocket;
    const raw = socket.getPeerCertificate()?.raw;
    const cert = raw === undefined ? undefined : new X509Certificate(raw);
    if (password === undefined && (cert === undefined || this.x509Enrollment(client.id, cert) === null)) return false;
    this.sessions.set(client, { registrationId: client.id, password: password?.toString(), cert });
    return true;
  }

  private x509Enrollment(registrationId: string, cert: X509Certificate): Enrollment | null {
    const now = Date.now();
    if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) return null;
    for (const e of this.enrollments) {
      if (
        e.kind === 'x509' &&
        e.registrationId === registrationId &&
        new X509Certificate(e.cert).fingerprint256 === cert.fingerprint256
      )
        return e;
    }
    for (const e of this.enrollments) {
      if (e.kind !== 'x509-group') continue;
      const ca = new X509Certificate(e.caCert);
      if (cert.checkIssued(ca) && cert.verify(ca.publicKey) && cert.subject === `CN=${registrationId}`) return e;
    }
    return null;
  }

  private sasEnrollment(session: Session): Enrollment | null {
    const id = session.registrationId;
    const resource = `${this.idScope}/registrations/${id}`;
    for (const e of this.enrollments) {
      if (e.kind !== 'symmetric' || e.registrationId !== id) continue;
      return sasValid(session.password!, e.key, resource) ? e : null;
    }
    for (const e of this.enrollments) {
      if (e.kind === 'symmetric-group' && sasValid(session.password!, deriveKey(e.groupKey, id), resource)) return e;
    }
    return null;
  }

  private onRequest(client: Client, packet: AedesPublishPacket): void {
    const session = this.sessions.get(client);
    if (session === undefined) return;
    const [path, query = ''] = packet.topic.split('?');
    const params = new URLSearchParams(query);
    const rid = params.get('$rid') ?? '';
    if (path === '$dps/registrations/PUT/iotdps-register/') this.onRegister(client, session, rid, packet.payload);
    else if (path === '$dps/registrations/GET/iotdps-get-operationstatus/') {
      this.onStatus(client, session, rid, params.get('operationId') ?? '');
    }
  }

  private onRegister(client: Client, session: Session, rid: string, payload: Buffer | string): void {
    if (this.requests.length < REQUESTS_KEPT_MAX) {
      this.requests.push(session.registrationId);
      this.requestTimesMs.push(Date.now());
    }
    if (this.throttled.left > 0) {
      this.throttled.left -= 1;
      return this.respond(
        client,
        429,
        rid,
        { errorCode: 429001, message: 'Operations are being throttled' },
        this.throttled.retryAfterSecs,
      );
    }
    let body: { registrationId?: unknown };
    try {
      body = JSON.parse(payload.toString()) as { registrationId?: unknown };
    } catch {
      return this.respond(client, 400, rid, { errorCode: 400004, message: 'the body is not JSON' });
    }
    if (body.registrationId !== session.registrationId) {
      const message = 'registrationId differs from the client id';
      return this.respond(client, 400, rid, { errorCode: 400004, message });
    }
    const enrollment =
      session.password === undefined
        ? this.x509Enrollment(session.registrationId, session.cert!)
        : this.sasEnrollment(session);
    if (enrollment === null) return this.respond(client, 401, rid, { errorCode: 401002, message: 'Unauthorized' });
    const operationId = `4.${randomUUID()}`;
    const operation = { registrationId: session.registrationId, enrollment, pollsLeft: this.assigningPolls };
    this.operations.set(operationId, operation);
    this.respond(client, 202, rid, { operationId, status: 'assigning' }, this.retryAfterSecs);
  }

  private onStatus(client: Client, session: Session, rid: string, operationId: string): void {
    const op = this.operations.get(operationId);
    if (op === undefined || op.registrationId !== session.registrationId) {
      return this.respond(client, 404, rid, { errorCode: 404001, message: 'no such operation' });
    }
    if (op.pollsLeft > 0) {
      op.pollsLeft -= 1;
      return this.respond(client, 202, rid, { operationId, status: 'assigning' }, this.retryAfterSecs);
    }
    this.operations.delete(operationId);
    const now = new Date().toISOString();
    const id = op.registrationId;
    if (op.enrollment.enabled === false) {
      const state = { registrationId: id, status: 'disabled', lastUpdatedDateTimeUtc: now };
      return this.respond(client, 200, rid, { operationId, status: 'disabled', registrationState: state });
    }
    const { registration, substatus } = this.allocate(id, op.enrollment);
    const state = {
      registrationId: id,
      assignedHub: registration.hub,
      deviceId: registration.deviceId,
      status: 'assigned',
      substatus,
      createdDateTimeUtc: registration.createdAt,
      lastUpdatedDateTimeUtc: now,
      etag: `"${randomUUID()}"`,
    };
    this.respond(client, 200, rid, { operationId, status: 'assigned', registrationState: state });
  }

  /** Creates the device on its hub (again, after a reassignment) and records the registration. */
  private allocate(id: string, enrollment: Enrollment): { registration: Registration; substatus: string } {
    const previous = this.registrations.get(id);
    const hub = this.movedTo.get(id) ?? previous?.hub ?? enrollment.hub ?? [...this.hubs.keys()][0]!;
    this.movedTo.delete(id);
    const deviceId =
      (enrollment.kind === 'symmetric' || enrollment.kind === 'x509') && enrollment.deviceId ? enrollment.deviceId : id;
    const auth =
      enrollment.kind === 'symmetric'
        ? { kind: 'sas' as const, key: enrollment.key }
        : enrollment.kind === 'symmetric-group'
          ? { kind: 'sas' as const, key: deriveKey(enrollment.groupKey, id) }
          : { kind: 'x509' as const };
    this.hubs.get(hub)!.register(deviceId, auth, enrollment.capabilities?.iotEdge ?? false);
    const registration = { hub, deviceId, createdAt: previous?.createdAt ?? new Date().toISOString() };
    this.registrations.set(id, registration);
    const moved = previous !== undefined && previous.hub !== hub;
    return { registration, substatus: moved ? 'deviceDataMigrated' : 'initialAssignment' };
  }

  private respond(client: Client, status: number, rid: string, body: unknown, retryAfterSecs?: number): void {
    const retry = retryAfterSecs === undefined ? '' : `&retry-after=${retryAfterSecs}`;
    const topic = `$dps/registrations/res/${status}/?$rid=${rid}${retry}`;
    const payload = Buffer.from(JSON.stringify(body));
    const packet = { cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false } as const;
    client.publish(packet, () => {});
  }
}

/** A symmetric-key group's device key, as DPS derives it: base64(HMAC-SHA256(base64decode(groupKey), regId)). */
function deriveKey(groupKey: string, registrationId: string): string {
  return createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId).digest('base64');
}

/** `SharedAccessSignature sr=<url-encoded resource>&sig=..&se=..&skn=registration`, HMAC-SHA256 of "<sr>\n<se>". */
function sasValid(token: string, keyBase64: string, resource: string): boolean {
  const fields = new Map<string, string>();
  for (const part of token.replace(/^SharedAccessSignature /, '').split('&')) {
    const eq = part.indexOf('=');
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr') ?? '';
  const se = fields.get('se') ?? '';
  if (fields.get('skn') !== 'registration') return false;
  if (decodeURIComponent(sr) !== resource || Number(se) * 1000 < Date.now()) return false;
  const expected = createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${sr}\n${se}`).digest();
  const given = Buffer.from(decodeURIComponent(fields.get('sig') ?? ''), 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
