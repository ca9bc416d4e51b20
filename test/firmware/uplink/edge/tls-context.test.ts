import t from 'tap';
import tls from 'node:tls';
import { edgeRig, until } from '../../../support/edge-rig.js';

/**
 * Edge mode's children's connections share one TLS context (the same CA): a context per connect parses the
 * CA into a store of its own and keeps it for the life of the connection, memory per child. Seen where the
 * SDK's mqtt.js opens the socket: tls.connect's options, by the client id the SDK gives each connection.
 */

type ConnectOptions = { clientId?: unknown; secureContext?: tls.SecureContext };

t.test("every child's connection is opened with the same shared TLS context", async (t) => {
  const children = ['c1', 'c2', 'c3'];
  const rig = await edgeRig(t, { children });
  const contexts = new Map<string, tls.SecureContext | undefined>();
  const connect = tls.connect;
  // mqtt.js (CommonJS) calls tls.connect through the module object, so the spy sees its connects.
  tls.connect = ((options: ConnectOptions, ...rest: unknown[]) => {
    if (typeof options === 'object' && typeof options.clientId === 'string')
      contexts.set(options.clientId, options.secureContext);
    return (connect as (...args: unknown[]) => tls.TLSSocket)(options, ...rest);
  }) as typeof tls.connect;
  t.teardown(() => void (tls.connect = connect));
  await rig.append([...children, ...children]);
  rig.start();
  await until('all telemetry', () => rig.hub.telemetry.length >= children.length * 2);
  const mine = children.map((id) => contexts.get(id));
  t.equal(mine.length, children.length, 'each child connected');
  t.not(mine[0], undefined, 'given a context, not left to make one from `ca`');
  t.ok(
    mine.every((context) => context === mine[0]),
    'one context for all children',
  );
});
