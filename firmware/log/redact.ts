/**
 * Secret scrubbing for everything outpost writes to the journal. Two layers, because either alone leaks:
 * key names catch structured fields (`{ password }`), but an error from an SDK carries the connection string
 * inside its message or stack, where only patterns over the text find it. `scrubText` runs over every
 * serialized log line just before it is written, so nothing reaches stdout without passing through it.
 */

export const REDACTED = '[redacted]';

/** Field names whose values are secrets wherever they appear (compared lower-case, without `_` and `-`). */
const SECRET_KEYS = new Set([
  'password',
  'passwd',
  'pwd',
  'secret',
  'token',
  'sastoken',
  'sas',
  'sig',
  'signature',
  'key',
  'primarykey',
  'secondarykey',
  'sharedaccesskey',
  'privatekey',
  'keypem',
  'connectionstring',
  'authorization',
  'apikey',
]);
/** Objects deeper than this are cut: log fields are small, and a cycle must not hang the logger. */
const REDACT_DEPTH_MAX = 8;
/** Shortest literal secret we register: shorter strings would blank out ordinary words. */
const LITERAL_SECRET_CHARS_MIN = 6;
/** Literal secrets kept (the uplink's own credentials); a bound so a bug cannot grow it forever. */
const LITERAL_SECRETS_MAX = 64;

/** JSON field names whose string value is a secret, as a regex alternation. */
const JSON_SECRET_FIELDS =
  'password|passwd|secret|token|sasToken|primaryKey|secondaryKey|sharedAccessKey|privateKey|' +
  'connectionString|authorization';
/** The same for JSON quoted inside a JSON string. */
const ESCAPED_SECRET_FIELDS =
  'password|secret|token|primaryKey|secondaryKey|sharedAccessKey|privateKey|' + 'connectionString';

/**
 * Patterns over text (a message, a stack, a JSON line). Each stops at `"`, `\` or whitespace so a match
 * inside a serialized JSON string never eats the closing quote and the line stays valid JSON.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // PEM private keys, also when cut short (no END line).
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----(?:(?!-----END)[^"])*(?:-----END [A-Z ]*PRIVATE KEY-----)?/g, REDACTED],
  // SAS tokens: "SharedAccessSignature sr=...&sig=...&se=...": the whole token goes.
  [/SharedAccessSignature\s+[^"\\\s]+/gi, `SharedAccessSignature ${REDACTED}`],
  [/([?&;\s]sig=)[^&;"\\\s]+/gi, `$1${REDACTED}`],
  // Connection strings: SharedAccessKey=..., Password=..., AccountKey=..., x509 key passphrases.
  [/\b(SharedAccessKey|AccountKey|Password|Pwd|Passphrase|Secret|Token|ApiKey)=[^;&"\\\s]+/gi, `$1=${REDACTED}`],
  // Credentials inside URLs: mqtts://user:pass@host.
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@"\\\s]*:)[^@/"\\\s]+@/gi, `$1${REDACTED}@`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`],
  // Serialized JSON fields with a secret name, whatever produced them (an SDK's own JSON in a message).
  [new RegExp(`("(?:${JSON_SECRET_FIELDS})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'gi'), `$1"${REDACTED}"`],
  // The same escaped inside a JSON string (an error message that quotes a JSON document).
  [
    new RegExp(`(\\\\"(?:${ESCAPED_SECRET_FIELDS})\\\\"\\s*:\\s*)\\\\"(?:[^"\\\\]|\\\\[^"])*\\\\"`, 'gi'),
    `$1\\"${REDACTED}\\"`,
  ],
];

const literalSecrets = new Set<string>();

/**
 * Registers a secret known at start (the uplink password, the key of a connection string): it is then
 * removed from log text even where no pattern would recognise it (a bare key in an SDK's error message).
 */
export function registerSecret(value: string | undefined): void {
  if (value === undefined || value.length < LITERAL_SECRET_CHARS_MIN) return;
  if (literalSecrets.size >= LITERAL_SECRETS_MAX) return;
  literalSecrets.add(value);
  // A secret also appears URL-encoded (SAS tokens) and JSON-escaped (log lines).
  literalSecrets.add(encodeURIComponent(value));
  literalSecrets.add(JSON.stringify(value).slice(1, -1));
}

/** Removes secrets from free text: patterns first, then the registered literals. */
export function scrubText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  for (const secret of literalSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

/** A copy of `value` with secret-named fields replaced and every string scrubbed; Errors become plain objects. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= REDACT_DEPTH_MAX) return '[too deep]';
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  const source = value instanceof Error ? errorFields(value) : (value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(source)) {
    out[key] = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : redactValue(item, depth + 1);
  }
  return out;
}

function errorFields(err: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  for (const [key, item] of Object.entries(err)) fields[key] = item;
  if (err.cause !== undefined) fields.cause = err.cause;
  return fields;
}
