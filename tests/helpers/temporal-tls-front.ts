import {
  connect,
  constants,
  createSecureServer,
  type ClientHttp2Session,
  type Http2SecureServer,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface TlsFrontOptions {
  /** The plaintext (h2c) Temporal frontend to forward to, host:port. */
  upstream: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** When set, every call must carry `authorization: Bearer <apiKey>`; others get gRPC UNAUTHENTICATED. */
  apiKey?: string;
}

/**
 * What a production Temporal frontend with mTLS and API-key authentication does at its door, in
 * front of the dev server (which speaks neither): terminate TLS, require a client certificate signed
 * by the CA, check the API key, then forward each gRPC call unchanged. Counts what it saw, so a test
 * can tell that every call was authenticated.
 */
export class TemporalTlsFront {
  address = '';
  calls = 0;
  refusedCalls = 0;
  readonly clientSubjects = new Set<string>();
  private server?: Http2SecureServer;
  private upstream?: ClientHttp2Session;
  private readonly sessions = new Set<ServerHttp2Session>();

  constructor(private readonly options: TlsFrontOptions) {}

  async start(): Promise<void> {
    const { ca, cert, key, apiKey } = this.options;
    this.server = createSecureServer({ ca, cert, key, requestCert: true, rejectUnauthorized: true, allowHTTP1: false });
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
    });
    this.server.on('stream', (stream, headers) => {
      this.calls++;
      const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
      if (peer?.subject?.CN) this.clientSubjects.add(String(peer.subject.CN));
      if (apiKey !== undefined && headers.authorization !== `Bearer ${apiKey}`) {
        this.refusedCalls++;
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(16), 'grpc-message': 'missing or wrong API key' },
          { endStream: true },
        );
        return;
      }
      const forwarded: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(headers)) if (name !== ':scheme' && name !== ':authority') forwarded[name] = value;
      const call = this.session().request(forwarded, { endStream: false });
      let trailers: OutgoingHttpHeaders = {};
      call.on('response', (response) => {
        const trailersOnly = 'grpc-status' in response;
        const head: OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(response)) if (name === ':status' || !name.startsWith(':')) head[name] = value;
        if (stream.destroyed) return;
        if (trailersOnly) stream.respond(head, { endStream: true });
        else stream.respond(head, { waitForTrailers: true });
      });
      call.on('trailers', (t) => {
        trailers = Object.fromEntries(Object.entries(t).filter(([name]) => !name.startsWith(':'))) as OutgoingHttpHeaders;
      });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      stream.pipe(call);
      call.pipe(stream);
      const abort = () => {
        if (!call.closed) call.close(constants.NGHTTP2_CANCEL);
      };
      stream.on('close', abort);
      stream.on('error', abort);
      call.on('error', () => {
        if (!stream.closed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private session(): ClientHttp2Session {
    if (!this.upstream || this.upstream.closed || this.upstream.destroyed) {
      this.upstream = connect(`http://${this.options.upstream}`);
      this.upstream.on('error', () => undefined);
    }
    return this.upstream;
  }

  async stop(): Promise<void> {
    this.upstream?.close();
    if (!this.server) return;
    const server = this.server;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Long polls hold sessions open; end them rather than wait a minute.
    for (const session of this.sessions) session.destroy();
    await closed;
  }
}
