import { CONDITION_CHARS_MAX, CONDITION_DEPTH_MAX, RouteError, type Condition, type Operand } from './condition.js';
import { DEVICE_ID_PATTERN, IO_NAME } from '../device-id.js';

/**
 * Routes, a subset of IoT Edge's syntax:
 *
 *   FROM /messages/* [WHERE <condition>] INTO $upstream
 *   FROM /messages/modules/<moduleId>/*                                  (a module of this gateway, every message)
 *   FROM /messages/modules/<moduleId>/outputs/* or .../outputs/<output>  (what it sent to any output, or to one)
 *   FROM /messages/devices/<deviceId>/modules/<moduleId>/* (or /outputs/... likewise)  (a module of a child)
 *   FROM /messages/devices/<deviceId>/* [WHERE <condition>] INTO BrokeredEndpoint("/devices/<id>/inputs/<name>")
 *   ... INTO BrokeredEndpoint("/modules/<moduleId>/inputs/<name>")       (a module of this gateway, IoT Edge's form)
 *   ... INTO BrokeredEndpoint("/devices/<id>/modules/<moduleId>/inputs/<name>")  (a module of a child device)
 *
 * Keywords are case-insensitive. Errors say what was expected and at which character.
 */

/** A local endpoint's `deviceId` is the target's connection id: a device id or `<deviceId>/<moduleId>`. */
export type Endpoint = { kind: 'upstream' } | { kind: 'local'; deviceId: string; input: string };

export interface Route {
  name: string;
  /** Only messages from this connection (a device, or `<deviceId>/<moduleId>`); null means every one. */
  fromDeviceId: string | null;
  /** Only messages sent to this module output (`$.on`); '*' any output; null every message. */
  fromOutput: string | null;
  condition: Condition | null;
  endpoint: Endpoint;
}

/** Longest route text, characters. */
export const ROUTE_CHARS_MAX = 2_048;
/** Tokens in one route; a bound on parser work for hostile input. */
const TOKENS_MAX = 512;

type Token = { kind: 'word' | 'string' | 'number' | 'op' | 'punct'; text: string; at: number };

function tokenize(text: string, name: string): Token[] {
  const tokens: Token[] = [];
  const rules: Array<[Token['kind'], RegExp]> = [
    ['string', /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/y],
    ['number', /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z_$])/y],
    ['op', /!=|<>|<=|>=|=|<|>/y],
    ['punct', /[(),]/y],
    ['word', /[A-Za-z_$/][A-Za-z0-9_$.\-/*:@]*/y],
  ];
  let at = 0;
  while (at < text.length) {
    if (/\s/.test(text[at])) {
      at += 1;
      continue;
    }
    const matched = rules.find(([, re]) => ((re.lastIndex = at), re.test(text)));
    if (matched === undefined)
      throw new RouteError(`route "${name}": unexpected character ${JSON.stringify(text[at])} at ${at}`);
    const [kind, re] = matched;
    tokens.push({ kind, text: text.slice(at, re.lastIndex), at });
    at = re.lastIndex;
    if (tokens.length > TOKENS_MAX) throw new RouteError(`route "${name}" has more than ${TOKENS_MAX} tokens`);
  }
  return tokens;
}

class Parser {
  private index = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly name: string,
    private readonly length: number,
  ) {}

  fail(expected: string): never {
    const token = this.tokens[this.index];
    const found = token === undefined ? 'end of route' : `"${token.text}" at ${token.at}`;
    throw new RouteError(`route "${this.name}": expected ${expected}, found ${found}`);
  }

  peek(): Token | undefined {
    return this.tokens[this.index];
  }

  isKeyword(word: string): boolean {
    const token = this.peek();
    return token?.kind === 'word' && token.text.toUpperCase() === word;
  }

  keyword(word: string): void {
    if (!this.isKeyword(word)) this.fail(word);
    this.index += 1;
  }

  take(kind: Token['kind'], expected: string): Token {
    const token = this.peek();
    if (token?.kind !== kind) this.fail(expected);
    this.index += 1;
    return token;
  }

  atEnd(): boolean {
    return this.index >= this.tokens.length;
  }

  position(): number {
    return this.peek()?.at ?? this.length;
  }

  condition(depth: number): Condition {
    if (depth > CONDITION_DEPTH_MAX)
      throw new RouteError(`route "${this.name}": condition nested deeper than ${CONDITION_DEPTH_MAX}`);
    let left = this.conjunction(depth);
    while (this.isKeyword('OR')) {
      this.index += 1;
      left = { op: 'or', left, right: this.conjunction(depth + 1) };
    }
    return left;
  }

  private conjunction(depth: number): Condition {
    let left = this.negation(depth);
    while (this.isKeyword('AND')) {
      this.index += 1;
      left = { op: 'and', left, right: this.negation(depth + 1) };
    }
    return left;
  }

  private negation(depth: number): Condition {
    if (depth > CONDITION_DEPTH_MAX)
      throw new RouteError(`route "${this.name}": condition nested deeper than ${CONDITION_DEPTH_MAX}`);
    if (this.isKeyword('NOT')) {
      this.index += 1;
      return { op: 'not', inner: this.negation(depth + 1) };
    }
    if (this.peek()?.text === '(') {
      this.index += 1;
      const inner = this.condition(depth + 1);
      if (this.take('punct', '")"').text !== ')') this.fail('")"');
      return inner;
    }
    if (this.isKeyword('IS_DEFINED')) {
      this.index += 1;
      if (this.take('punct', '"("').text !== '(') this.fail('"("');
      const operand = this.operand();
      if (!('ref' in operand)) this.fail('a property name');
      if (this.take('punct', '")"').text !== ')') this.fail('")"');
      return { op: 'defined', ref: operand.ref };
    }
    const left = this.operand();
    const opText = this.take('op', 'a comparison (=, !=, <, <=, >, >=)').text;
    const op = opText === '<>' ? '!=' : (opText as '=' | '!=' | '<' | '<=' | '>' | '>=');
    return { op, left, right: this.operand() };
  }

  private operand(): Operand {
    const token = this.peek();
    if (token === undefined) this.fail('a property, string or number');
    this.index += 1;
    if (token.kind === 'string') return { literal: token.text.slice(1, -1).replace(/\\(.)/g, '$1') };
    if (token.kind === 'number') return { literal: Number(token.text) };
    if (token.kind !== 'word') return ((this.index -= 1), this.fail('a property, string or number'));
    const upper = token.text.toUpperCase();
    if (upper === 'TRUE' || upper === 'FALSE') return { literal: upper === 'TRUE' };
    if (upper === 'NULL') return { literal: null };
    const ref = token.text.split('.');
    if (ref.some((part) => part.length === 0) || token.text.includes('/') || token.text.includes('*')) {
      this.index -= 1;
      this.fail('a property name');
    }
    const system = [
      '$deviceId',
      '$connectionDeviceId',
      '$moduleId',
      '$connectionModuleId',
      '$contentType',
      '$contentEncoding',
      '$body',
    ];
    if (ref[0].startsWith('$') && !system.includes(ref[0])) {
      this.index -= 1;
      this.fail(system.join(', '));
    }
    if (ref[0] === '$connectionDeviceId') ref[0] = '$deviceId';
    if (ref[0] === '$connectionModuleId') ref[0] = '$moduleId';
    return { ref };
  }
}

const SOURCE_FORMS =
  '/messages/*, /messages/devices/<deviceId>/*, /messages/modules/<moduleId>/*, /messages/modules/<moduleId>/outputs/<output or *> or /messages/devices/<deviceId>/modules/<moduleId>/(* or outputs/<output or *>)';

/** `*` (every message), `outputs/*` (any output) or `outputs/<name>`; undefined when it is none of these. */
function outputFilter(tail: string): string | null | undefined {
  if (tail === '*') return null;
  const output = /^outputs\/(\*|[^/]+)$/.exec(tail)?.[1];
  return output !== undefined && (output === '*' || IO_NAME.test(output)) ? output : undefined;
}

/** The connection id a FROM clause names (null for every sender) and the module output it takes. */
function parseSource(
  text: string,
  name: string,
  gatewayId: string | undefined,
): { fromDeviceId: string | null; fromOutput: string | null } {
  if (text === '/messages/*') return { fromDeviceId: null, fromOutput: null };
  const device = /^\/messages\/devices\/([^/]+)\/\*$/.exec(text);
  if (device !== null && DEVICE_ID_PATTERN.test(device[1])) return { fromDeviceId: device[1], fromOutput: null };
  const own = /^\/messages\/modules\/([^/]+)\/(.+)$/.exec(text);
  const ownOutput = own === null ? undefined : outputFilter(own[2]);
  if (own !== null && ownOutput !== undefined && gatewayId !== undefined && DEVICE_ID_PATTERN.test(own[1]))
    return { fromDeviceId: `${gatewayId}/${own[1]}`, fromOutput: ownOutput };
  const child = /^\/messages\/devices\/([^/]+)\/modules\/([^/]+)\/(.+)$/.exec(text);
  const childOutput = child === null ? undefined : outputFilter(child[3]);
  if (
    child !== null &&
    childOutput !== undefined &&
    DEVICE_ID_PATTERN.test(child[1]) &&
    DEVICE_ID_PATTERN.test(child[2])
  )
    return { fromDeviceId: `${child[1]}/${child[2]}`, fromOutput: childOutput };
  throw new RouteError(`route "${name}": FROM must be ${SOURCE_FORMS}, got "${text}"`);
}

const ENDPOINT_FORMS =
  '"/devices/<deviceId>/inputs/<input>", "/modules/<moduleId>/inputs/<input>" or "/devices/<deviceId>/modules/<moduleId>/inputs/<input>"';

/** The connection id a BrokeredEndpoint path names, or null when it names none. */
function endpointTarget(target: string, gatewayId: string | undefined): { deviceId: string; input: string } | null {
  const device = /^\/devices\/([^/]+)\/inputs\/([^/]+)$/.exec(target);
  if (device !== null)
    return DEVICE_ID_PATTERN.test(device[1]) && IO_NAME.test(device[2])
      ? { deviceId: device[1], input: device[2] }
      : null;
  const own = /^\/modules\/([^/]+)\/inputs\/([^/]+)$/.exec(target);
  if (own !== null && gatewayId !== undefined)
    return DEVICE_ID_PATTERN.test(own[1]) && IO_NAME.test(own[2])
      ? { deviceId: `${gatewayId}/${own[1]}`, input: own[2] }
      : null;
  const child = /^\/devices\/([^/]+)\/modules\/([^/]+)\/inputs\/([^/]+)$/.exec(target);
  if (child !== null && DEVICE_ID_PATTERN.test(child[1]) && DEVICE_ID_PATTERN.test(child[2]) && IO_NAME.test(child[3]))
    return { deviceId: `${child[1]}/${child[2]}`, input: child[3] };
  return null;
}

function parseEndpoint(p: Parser, name: string, gatewayId: string | undefined): Endpoint {
  const token = p.take('word', '$upstream or BrokeredEndpoint("/devices/<id>/inputs/<name>")');
  if (token.text === '$upstream') return { kind: 'upstream' };
  if (token.text.toLowerCase() !== 'brokeredendpoint') p.fail('$upstream or BrokeredEndpoint');
  if (p.take('punct', '"("').text !== '(') p.fail('"("');
  const target = p.take('string', 'a quoted "/devices/<id>/inputs/<name>"').text.slice(1, -1);
  if (p.take('punct', '")"').text !== ')') p.fail('")"');
  const local = endpointTarget(target, gatewayId);
  if (local === null)
    throw new RouteError(`route "${name}": BrokeredEndpoint must be ${ENDPOINT_FORMS}, got "${target}"`);
  return { kind: 'local', ...local };
}

/**
 * Parses one route; throws RouteError naming the route and the position of the problem. `gatewayId` owns the
 * modules `/modules/<moduleId>/...` names; without it that form is refused.
 */
export function parseRoute(name: string, text: string, gatewayId?: string): Route {
  if (typeof text !== 'string' || text.length > ROUTE_CHARS_MAX)
    throw new RouteError(`route "${name}" must be a string of at most ${ROUTE_CHARS_MAX} characters`);
  const p = new Parser(tokenize(text, name), name, text.length);
  p.keyword('FROM');
  const { fromDeviceId, fromOutput } = parseSource(
    p.take('word', 'a source such as /messages/*').text,
    name,
    gatewayId,
  );
  let condition: Condition | null = null;
  if (p.isKeyword('WHERE')) {
    p.keyword('WHERE');
    const start = p.position();
    condition = p.condition(0);
    if (p.position() - start > CONDITION_CHARS_MAX)
      throw new RouteError(`route "${name}": WHERE clause longer than ${CONDITION_CHARS_MAX} characters`);
  }
  p.keyword('INTO');
  const endpoint = parseEndpoint(p, name, gatewayId);
  if (!p.atEnd()) p.fail('end of route');
  return { name, fromDeviceId, fromOutput, condition, endpoint };
}

export function parseRoutes(routes: Record<string, string>, file = 'board.json', gatewayId?: string): Route[] {
  return Object.entries(routes).map(([name, text]) => {
    try {
      return parseRoute(name, text, gatewayId);
    } catch (err) {
      if (err instanceof RouteError) throw new RouteError(`${file}: routes.${name}: ${err.message}`);
      throw err;
    }
  });
}
