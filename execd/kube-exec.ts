import type { RequestOptions } from 'node:https';
import WebSocket from 'ws';
import type { Process, ProcessSpec, ProcessStarter, StreamName } from './process';
import { ExecdError } from './errors';

/**
 * Processes in a pod's sandbox container, through the pod `exec` subresource: a WebSocket speaking
 * the channel protocol (v5.channel.k8s.io where the API server offers it, else v4). Each binary
 * message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final Status (exit code),
 * and in v5 255 = "close this channel" (how stdin gets its EOF). The pod exec has no user, cwd or
 * environment of its own: those come from the shell line (a shell-less image cannot have them).
 */

/** What execd needs of a KubeConfig (its cluster address and credentials), so it never loads the client. */
export interface KubeConnection {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(opts: RequestOptions & WebSocket.ClientOptions): Promise<void>;
}

export interface PodTarget {
  namespace: string;
  pod: string;
  container: string;
}

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const CLOSE = 255;

/** The exit code in an exec's final Status: 0 on Success, the ExitCode cause on NonZeroExitCode; else why it failed. */
export function parseExecStatus(payload: Buffer): number {
  let s: { status?: string; reason?: string; message?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };
  try {
    s = JSON.parse(payload.toString('utf8')) as typeof s;
  } catch {
    throw new Error(`the exec's final status is not JSON: ${payload.toString('utf8').slice(0, 200)}`);
  }
  if (s.status === 'Success') return 0;
  const code = s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
  if (s.reason === 'NonZeroExitCode' && code && /^\d+$/.test(code)) return Number(code);
  throw new Error(s.message ?? `the exec failed (${s.reason ?? 'no reason given'})`);
}

/** The exec subresource URL (ws/wss on the cluster's server) for a command. */
export function execUrl(server: string, target: PodTarget, argv: string[], stdin: boolean): string {
  const q = new URLSearchParams();
  for (const a of argv) q.append('command', a);
  q.set('container', target.container);
  q.set('stdin', String(stdin));
  q.set('stdout', 'true');
  q.set('stderr', 'true');
  q.set('tty', 'false');
  const base = server.replace(/^http/, 'ws').replace(/\/$/, '');
  return `${base}/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/exec?${q}`;
}

export class PodProcesses implements ProcessStarter {
  readonly canSetUser = false;
  /** v5 can, v4 cannot; which one is offered is known per connection only: uploads take the tar path. */
  readonly canCloseStdin = false;

  constructor(
    private readonly kube: KubeConnection,
    readonly target: PodTarget,
  ) {}

  async start(spec: ProcessSpec, onOutput: (stream: StreamName, data: Buffer) => void): Promise<Process> {
    const cluster = this.kube.getCurrentCluster();
    if (!cluster) throw new Error('no Kubernetes cluster configured');
    const opts: RequestOptions & WebSocket.ClientOptions = {};
    await this.kube.applyToHTTPSOptions(opts);
    const ws = new WebSocket(execUrl(cluster.server, this.target, spec.argv, spec.stdin), EXEC_PROTOCOLS, opts);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8').slice(0, 2000)));
        res.on('end', () => {
          const message = (() => {
            try {
              return (JSON.parse(body) as { message?: string }).message ?? body;
            } catch {
              return body;
            }
          })();
          reject(
            status === 404
              ? new ExecdError(404, 'SANDBOX::NOT_FOUND', `pod ${this.target.namespace}/${this.target.pod} not found`)
              : new ExecdError(
                  status === 400 ? 409 : 502,
                  status === 400 ? 'SANDBOX::INVALID_STATE' : 'RUNTIME_ERROR',
                  `pod exec refused (${status}): ${message}`,
                ),
          );
        });
      });
    });
    let exit: number | undefined;
    let failure: Error | undefined;
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) return;
      const payload = data.subarray(1);
      switch (data[0]) {
        case STDOUT:
          if (payload.length) onOutput('stdout', payload);
          break;
        case STDERR:
          if (payload.length) onOutput('stderr', payload);
          break;
        case STATUS:
          try {
            exit = parseExecStatus(payload);
          } catch (err) {
            failure = err as Error;
          }
          break;
        default: // CLOSE of a channel, resize: nothing to do
      }
    });
    ws.on('error', () => ws.terminate());
    const closed = new Promise<void>((done) => ws.once('close', () => done()));
    const frame = (data: string | Buffer) => Buffer.concat([Buffer.from([STDIN]), Buffer.from(data)]);
    const send = (data: string | Buffer) => ws.send(frame(data));
    return {
      write: send,
      send: (data) => new Promise<void>((resolve, reject) => ws.send(frame(data), (err) => (err ? reject(err) : resolve()))),
      end: (data) => {
        if (data !== undefined) send(data);
        // v4 cannot close stdin: the command line reads /dev/null anyway (see commandLine).
        if (ws.protocol === EXEC_PROTOCOLS[0]) ws.send(Buffer.from([CLOSE, STDIN]));
      },
      pause: () => ws.pause(),
      resume: () => ws.resume(),
      closed,
      exitCode: async () => {
        await closed;
        if (exit !== undefined) return exit;
        throw failure ?? new Error('the exec ended without a final status');
      },
      destroy: () => ws.terminate(),
    };
  }
}
