import t from 'tap';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseUplinkConfig, type MqttUplinkConfig, type AzureUplinkConfig } from '../../../firmware/uplink/config.js';
import { loadUplinkFiles } from '../../../firmware/uplink/uplink-files.js';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/** board.json's `uplink` section: defaults, and errors that name the file, the JSON path and the expectation. */

const BOARD = '/etc/outpost/board.json';

t.test('absent means no cloud; defaults fill the rest', async (t) => {
  t.same(parseUplinkConfig(undefined, BOARD), { protocol: 'none' });
  t.same(
    parseUplinkConfig({ protocol: 'none', url: 'mqtt://kept-for-later:1883' }, BOARD),
    { protocol: 'none' },
    'none keeps a switched-off cloud',
  );
  const config = parseUplinkConfig(
    { protocol: 'mqtt', url: 'mqtt://broker:1883', caFile: undefined },
    BOARD,
  ) as MqttUplinkConfig;
  t.match(config, {
    protocol: 'mqtt',
    url: 'mqtt://broker:1883',
    inflightMax: 100,
    bytesPerSecMax: 0,
    backoff: { baseMs: 500, maxMs: 60_000 },
    interfaces: [],
    priorityLanes: [],
    protocolVersion: 5,
  });
  const full = parseUplinkConfig(
    {
      protocol: 'mqtt',
      url: 'mqtts://broker:8883',
      caFile: 'certs/ca.pem',
      certFile: '/abs/gw.pem',
      keyFile: 'gw.key',
      interfaces: ['eth0', 'wwan0'],
      modemFlagPath: 'run/link-up',
      backoff: { baseMs: 100, maxMs: 5_000 },
      priorityLanes: [{ lane: 'alarms', weight: 4 }],
    },
    BOARD,
  ) as MqttUplinkConfig;
  t.equal(full.caFile, '/etc/outpost/certs/ca.pem', 'relative paths resolve against board.json');
  t.equal(full.certFile, '/abs/gw.pem');
  t.equal(full.modemFlagPath, '/etc/outpost/run/link-up');
  t.same(full.priorityLanes, [{ lane: 'alarms', weight: 4 }]);
});

t.test('edge mode with provisioning takes no $edgeHub file: the gateway sets the module up itself', async (t) => {
  const provisioning = { idScope: '0ne00000A0A', groupKeyFile: 'group.key' };
  const config = parseUplinkConfig({ protocol: 'azure', provisioning, azure: { mode: 'edge' } }, BOARD);
  t.match(config, { protocol: 'azure', azure: { mode: 'edge', edgeHubConnectionStringFile: undefined } });
});

t.test('bad values are refused with file, path and expectation: the section, mqtt', async (t) => {
  const bad = (value: unknown, pattern: RegExp) => t.throws(() => parseUplinkConfig(value, BOARD), pattern);
  bad(
    { protocol: 'amqp' },
    /board\.json: \$\.uplink\.protocol: expected one of "mqtt", "azure", "sim", "none", got "amqp"/,
  );
  bad({ protocol: 'mqtt' }, /\$\.uplink\.url: expected mqtt:\/\/host:port or mqtts:\/\/host:port, got nothing/);
  bad({ protocol: 'mqtt', url: 'http://x' }, /\$\.uplink\.url: expected mqtt:\/\/host:port/);
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', inflightMax: 100_000 },
    /\$\.uplink\.inflightMax: expected an integer between 1 and 4096 \(messages\), got 100000/,
  );
  bad({ protocol: 'mqtt', url: 'mqtt://x', urll: 1 }, /\$\.uplink\.urll: expected one of the known fields/);
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', connectionString: 'a' },
    /\$\.uplink\.connectionString: expected one of the known fields/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', backoff: { baseMs: 1000, maxMs: 10 } },
    /\$\.uplink\.backoff\.maxMs: expected an integer between 1000 and 3600000 \(ms, at least baseMs\), got 10/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', interfaces: ['eth0', 'a/b'] },
    /\$\.uplink\.interfaces\[1\]: expected a network interface name/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', topicTemplate: 'a/{nope}' },
    /\$\.uplink\.topicTemplate: expected a topic template: "topicTemplate" has unknown placeholder \{nope\}/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', configTopic: 'a/+/config' },
    /\$\.uplink\.configTopic: expected a topic without \+ or #/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', caFile: 'ca.pem' },
    /\$\.uplink\.caFile: expected no caFile with a plain mqtt:\/\/ url/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtts://x', certFile: 'c.pem' },
    /\$\.uplink\.keyFile: expected certFile and keyFile given together/,
  );
  bad(
    { protocol: 'mqtt', url: 'mqtt://x', priorityLanes: [{ lane: 'upstream' }] },
    /\$\.uplink\.priorityLanes\[0\]\.lane: expected a lane name/,
  );
  bad('mqtt', /\$\.uplink: expected an object, got "mqtt"/);
});

t.test('bad values are refused with file, path and expectation: azure, provisioning', async (t) => {
  const bad = (value: unknown, pattern: RegExp) => t.throws(() => parseUplinkConfig(value, BOARD), pattern);
  bad(
    { protocol: 'azure' },
    /\$\.uplink\.connectionString: expected exactly one of connectionString, connectionStringFile and provisioning/,
  );
  bad(
    { protocol: 'azure', connectionString: 'x', connectionStringFile: 'y' },
    /exactly one of connectionString, connectionStringFile and provisioning/,
  );
  const dps = { idScope: '0ne00000A0A', groupKeyFile: 'group.key' };
  bad(
    { protocol: 'azure', connectionString: 'x', provisioning: dps },
    /exactly one of connectionString, connectionStringFile and provisioning/,
  );
  bad(
    { protocol: 'azure', provisioning: { ...dps, symmetricKeyFile: 'k' } },
    new RegExp(
      /\$\.uplink\.provisioning\.groupKeyFile: /.source +
        /expected exactly one of groupKeyFile, symmetricKeyFile, certPath with keyPath/.source,
    ),
  );
  bad(
    { protocol: 'azure', provisioning: { idScope: '0ne00000A0A' } },
    /\$\.uplink\.provisioning\.groupKeyFile: expected exactly one of/,
  );
  bad(
    { protocol: 'azure', provisioning: dps, azure: { mode: 'edge', edgeHubConnectionStringFile: 'eh.cs' } },
    /\$\.uplink\.azure\.edgeHubConnectionStringFile: expected no file with provisioning/,
  );
  bad(
    { protocol: 'azure', provisioning: dps, azure: { mode: 'edge', edgeHubConnectionStringFile: 'eh.cs' } },
    /\$\.uplink\.azure\.edgeHubConnectionStringFile: expected no file with provisioning/,
  );
  bad(
    { protocol: 'azure', provisioning: { ...dps, idScope: 'myhub' } },
    /\$\.uplink\.provisioning\.idScope: expected a DPS ID scope/,
  );
  bad(
    { protocol: 'azure', provisioning: { ...dps, registrationId: 'gw-{mac}' } },
    new RegExp(
      /\$\.uplink\.provisioning\.registrationId: /.source +
        /expected a template whose placeholders are \{serial\}, \{machineId\}, \{hostname\} \(not \{mac\}\)/.source,
    ),
  );
  bad(
    { protocol: 'azure', provisioning: { ...dps, registrationId: 'gw/{serial}' } },
    /\$\.uplink\.provisioning\.registrationId: expected a registration id template/,
  );
  bad(
    { protocol: 'azure', provisioning: { idScope: '0ne00000A0A', certPath: 'c.pem' } },
    /\$\.uplink\.provisioning\.keyPath: expected certPath and keyPath given together/,
  );
  bad(
    { protocol: 'azure', provisioning: dps, certFile: 'c.pem', keyFile: 'k.pem' },
    /\$\.uplink\.certFile: expected no certFile with provisioning/,
  );
  bad(
    { protocol: 'azure', provisioning: { ...dps, bogus: 1 } },
    /\$\.uplink\.provisioning\.bogus: expected one of the known fields/,
  );
});

t.test('files are read at start; errors name the field and the file', async (t) => {
  const dir = tempDir(t);
  const board = path.join(dir, 'board.json');
  const ca = await createTestCa();
  await writeFile(path.join(dir, 'ca.pem'), ca.cert);
  await writeFile(path.join(dir, 'not-pem.txt'), 'hello');
  await writeFile(path.join(dir, 'cs'), 'HostName=hub;DeviceId=gw-1;SharedAccessKey=a2V5\n');
  const mqttConfig = parseUplinkConfig(
    { protocol: 'mqtt', url: 'mqtts://broker:8883', caFile: 'ca.pem' },
    board,
  ) as MqttUplinkConfig;
  t.match(await loadUplinkFiles(mqttConfig, 'gw-1'), {
    protocol: 'mqtt',
    gatewayId: 'gw-1',
    ca: /-----BEGIN CERTIFICATE-----/,
  });

  const missing = parseUplinkConfig(
    { protocol: 'mqtt', url: 'mqtts://broker:8883', caFile: 'gone.pem' },
    board,
  ) as MqttUplinkConfig;
  await t.rejects(loadUplinkFiles(missing, 'gw-1'), {
    name: 'ConfigError',
    message: new RegExp(
      `board\\.json: \\$\\.uplink\\.caFile: expected a readable file \\(PEM\\), got ${dir}/gone\\.pem: ENOENT`,
    ),
  });
  const notPem = parseUplinkConfig(
    { protocol: 'mqtt', url: 'mqtts://b:1', caFile: 'not-pem.txt' },
    board,
  ) as MqttUplinkConfig;
  await t.rejects(
    loadUplinkFiles(notPem, 'gw-1'),
    /\$\.uplink\.caFile: expected a PEM file \(-----BEGIN \.\.\.\), got .*not-pem\.txt: no PEM block/,
  );

  const azure = parseUplinkConfig({ protocol: 'azure', connectionStringFile: 'cs' }, board) as AzureUplinkConfig;
  t.match(
    await loadUplinkFiles(azure, 'gw-1'),
    { protocol: 'azure', connectionString: 'HostName=hub;DeviceId=gw-1;SharedAccessKey=a2V5' },
    'trimmed',
  );
});
