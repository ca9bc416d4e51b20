import { OPTIONS, OPTION_SECTIONS, type OptionSpec } from './schema.js';

/**
 * The configuration reference (firmware/config/REFERENCE.md), rendered from the schema table the validators
 * use; `outpost board reference` prints it, and a test keeps the checked-in file equal to it.
 */

const SECTION_INTROS: Record<(typeof OPTION_SECTIONS)[number], string> = {
  identity: 'Who this gateway is. Required.',
  storage:
    'The ring log on local disk (firmware/store). A variant in boards/ may set it; board.json overrides it ' +
    'key by key.',
  metrics: 'Prometheus text on loopback. Without this section there is no metrics server.',
  ota: 'Over-the-air updates of outpost itself (firmware/ota). Without this section every option has its default.',
  page: "The technician's HTTPS page (firmware/page): live status, login, a few actions. Off without this section.",
  uplink:
    'How the gateway reaches its cloud (firmware/uplink). Without this section: `"protocol": "none"`, store ' +
    'only. ' +
    'The protocols column says which protocols accept an option; `none` accepts them all (a cloud switched off ' +
    'keeps its settings).',
  hub: 'The local MQTT server for child devices, speaking the Azure IoT Hub device dialect (firmware/hub).',
  routes:
    "Where messages from children and the gateway's own devices go. Without this section everything goes " +
    'upstream.',
};

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function defaultOf(spec: OptionSpec): string {
  if (spec.default !== undefined) return spec.default;
  return spec.int?.default !== undefined ? String(spec.int.default) : 'required';
}

function rangeOf(spec: OptionSpec): string {
  if (spec.range !== undefined) return spec.range;
  return spec.int === undefined ? '' : `${spec.int.min} to ${spec.int.max}`;
}

function row(spec: OptionSpec, withProtocols: boolean): string {
  const cells = [
    `\`${spec.path}\``,
    spec.type,
    defaultOf(spec),
    spec.unit ?? '',
    rangeOf(spec),
    `\`${JSON.stringify(spec.example)}\``,
    ...(withProtocols ? [(spec.protocols ?? ['mqtt', 'azure', 'sim']).join(', ')] : []),
    spec.doc,
  ];
  return `| ${cells.map(cell).join(' | ')} |`;
}

export function renderReference(): string {
  const lines = [
    '# board.json reference',
    '',
    '<!-- Generated from firmware/config/schema*.ts by `outpost board reference`; edit the table there, not this file',
    '     (test/firmware/config/reference.test.ts fails when they differ; OUTPOST_WRITE_REFERENCE=1 rewrites it). -->',
    '',
    'Every option of the sections below, as the validators check it: an option not listed here is refused, and',
    'every error has the form `<file>: <JSON path>: expected <what>, got <value>`. Units are in the names',
    '(`...Ms`, `...Secs`, `...Bytes`). Relative paths are resolved against the folder of board.json (a replay file ' +
      'against the file that names',
    'it), never the working directory. Any object may carry a `"$comment"` key, which is ignored.',
    '`outpost board check` validates a board without starting it (`--no-files`: without reading the files it names).',
    'Annotated examples: `boards/examples/` (`mqtt.json`, `azure.json`, `sim-cloud.json`).',
    '',
  ];
  for (const section of OPTION_SECTIONS) {
    const specs = OPTIONS.filter((spec) => spec.path.split('.')[0] === section);
    const withProtocols = section === 'uplink';
    lines.push(`## \`${section}\``, '', SECTION_INTROS[section], '');
    const [protocolsHead, protocolsRule] = withProtocols ? [' protocols |', '---|'] : ['', ''];
    lines.push(`| option | type | default | unit | range | example |${protocolsHead} description |`);
    lines.push(`|---|---|---|---|---|---|${protocolsRule}---|`);
    for (const spec of specs) lines.push(row(spec, withProtocols));
    lines.push('');
  }
  return lines.join('\n');
}
