/**
 * Child process for the publish-on-CONNACK test: opens one session per `{clientId, username, password}` in
 * the JSON array argument against 127.0.0.1:<port>, publishes QoS 1 from the CONNACK handler (as an SDK
 * flushes its queue when open() resolves) and prints one JSON line: the client ids PUBACKed and the ones
 * cut. It runs in a process of its own so its publishes race the hub's connect handling the way a real
 * child's do.
 */
import mqtt from 'mqtt';

const [portArg, sessionsArg] = process.argv.slice(2);
const sessions = JSON.parse(sessionsArg!) as Array<{ clientId: string; username: string; password: string }>;
const outcomes = new Map<string, 'puback' | 'cut'>();
const clients = sessions.map(({ clientId, username, password }) => {
  const client = mqtt.connect(`mqtt://127.0.0.1:${portArg}`, {
    clientId,
    username,
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 20_000,
  });
  const settle = (outcome: 'puback' | 'cut') => {
    if (outcomes.has(clientId)) return;
    outcomes.set(clientId, outcome);
    if (outcomes.size === sessions.length) finish();
  };
  client.once('connect', () =>
    client.publish(`devices/${clientId}/messages/events/`, clientId, { qos: 1 }, (err) =>
      settle(err ? 'cut' : 'puback'),
    ),
  );
  client.once('close', () => settle('cut'));
  client.on('error', () => settle('cut'));
  return client;
});

function finish(): void {
  const ids = (o: string) => [...outcomes].filter(([, v]) => v === o).map(([k]) => k);
  process.stdout.write(`${JSON.stringify({ puback: ids('puback'), cut: ids('cut') })}\n`);
  void Promise.all(clients.map((c) => c.endAsync(true))).then(() => process.exit(0));
}
