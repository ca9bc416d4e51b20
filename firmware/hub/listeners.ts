import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import type { HubConfig } from './config.js';
import type { ConnectionGate } from './gate.js';

/**
 * The hub's TCP and TLS listeners. Every accepted socket goes through the connection gate first, before a
 * TLS handshake or an MQTT byte is read; what the gate lets through is handed to aedes by `handle`.
 */

export interface TlsMaterial {
  cert: string;
  key: string;
}

export class HubListeners {
  private tcpServer: net.Server | null = null;
  private tlsServer: tls.Server | null = null;

  constructor(
    private readonly gate: ConnectionGate,
    private readonly count: (reason: 'tls' | 'protocol' | 'pending-max', address: string | undefined) => void,
  ) {
    gate.onChange = () => {
      const limit = gate.acceptLimit();
      for (const s of [this.tcpServer, this.tlsServer]) if (s !== null) s.maxConnections = limit;
    };
  }

  async listen(
    config: HubConfig,
    material: TlsMaterial | null,
    trustBundle: string | null,
    handle: (socket: net.Socket) => void,
  ): Promise<void> {
    if (config.tcp !== null) {
      this.tcpServer = net.createServer((socket) => this.gate.admit(socket) && handle(socket));
      await this.bind(this.tcpServer, config.tcp);
    }
    if (config.tls !== null && material !== null) {
      const options = { ...this.tlsOptions(material, trustBundle), handshakeTimeout: config.connectTimeoutSecs * 1000 };
      this.tlsServer = tls.createServer(options, handle);
      // Before the TLS layer sees it: a refused socket costs no handshake.
      this.tlsServer.prependListener('connection', (socket: net.Socket) => this.gate.admit(socket));
      this.tlsServer.on('tlsClientError', (_err, socket) => this.count('tls', socket.remoteAddress));
      await this.bind(this.tlsServer, config.tls);
    }
  }

  private async bind(server: net.Server, at: { host: string; port: number }): Promise<void> {
    server.maxConnections = this.gate.acceptLimit();
    server.on('drop', (data?: { remoteAddress?: string }) => this.count('pending-max', data?.remoteAddress));
    server.on('error', () => this.count('protocol', undefined));
    server.listen(at.port, at.host);
    await once(server, 'listening');
  }

  /**
   * Client certificates are requested but judged by the authenticator, so SAS children need none. `ca` is
   * always given: without it Node verifies against its public roots, and any public CA's certificate with
   * the right CN would pass as an x509-ca child. An empty list trusts nothing.
   */
  private tlsOptions(material: TlsMaterial, trustBundle: string | null): tls.SecureContextOptions & tls.TlsOptions {
    return {
      cert: material.cert,
      key: material.key,
      requestCert: true,
      rejectUnauthorized: false,
      ca: trustBundle ?? [],
    };
  }

  /** New CA trust bundle from a scope sync: new TLS handshakes verify x509-ca children against it. */
  updateTrust(material: TlsMaterial | null, trustBundle: string | null): void {
    if (this.tlsServer === null || material === null) return;
    this.tlsServer.setSecureContext(this.tlsOptions(material, trustBundle));
  }

  ports(): { tcp: number | null; tls: number | null } {
    const port = (s: net.Server | null) => (s === null ? null : (s.address() as net.AddressInfo).port);
    return { tcp: port(this.tcpServer), tls: port(this.tlsServer) };
  }

  async close(): Promise<void> {
    for (const s of [this.tcpServer, this.tlsServer]) {
      if (s === null) continue;
      s.close();
      await once(s, 'close');
    }
  }
}
