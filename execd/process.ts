/**
 * What a runtime gives the execd data plane: start a process in a sandbox, with its stdout and
 * stderr told apart, stdin to write to, and its exit code. Docker does it with the engine's exec API
 * (docker-exec.ts), Kubernetes with the pod exec subresource (kube-exec.ts); everything above —
 * warm execs, commands, sessions, file scripts — is written once against this.
 */

export type StreamName = 'stdout' | 'stderr';

export interface ProcessSpec {
  argv: string[];
  /** Attach stdin (written with write/end). */
  stdin: boolean;
  /** "uid" or "uid:gid"; only where the runtime can (Docker). */
  user?: string;
  /** Only for argv processes on runtimes that can set them (Docker). */
  cwd?: string;
  env?: Record<string, string>;
}

export interface Process {
  write(data: string | Buffer): void;
  /** Write, waiting only while the connection's buffer is full (flow control for large stdin). */
  send(data: Buffer): Promise<void>;
  /** Close stdin, after `data` if given. */
  end(data?: string | Buffer): void;
  /** Stop reading output (backpressure) until resume(). */
  pause(): void;
  resume(): void;
  /** Output has ended (the process is gone, or its streams are closed). */
  closed: Promise<void>;
  /** The exit code, once closed. */
  exitCode(): Promise<number>;
  destroy(): void;
}

export interface ProcessStarter {
  /** Whether processes can run as another user and argv processes with a cwd and env. */
  readonly canSetUser: boolean;
  /** Whether end() reliably gives the process EOF on stdin (a pod exec on v4 cannot). */
  readonly canCloseStdin: boolean;
  start(spec: ProcessSpec, onOutput: (stream: StreamName, data: Buffer) => void): Promise<Process>;
}
