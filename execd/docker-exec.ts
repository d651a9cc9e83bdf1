import type { Duplex } from 'node:stream';
import type Dockerode from 'dockerode';
import type { Process, ProcessSpec, ProcessStarter, StreamName } from './process';

/**
 * Processes in one Docker container, through the engine's exec API: create, start with the streams
 * attached (hijacked connection; stdin half-closed for EOF), demultiplex stdout/stderr from the
 * engine's framing, and read the exit code from exec inspect.
 */

/** Docker's stream framing: [stream, 0, 0, 0, size (uint32 BE)] then size bytes. */
export class FrameDemux {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly emit: (stream: StreamName, data: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const kind = this.pending[0];
      const data = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      if (size > 0) this.emit(kind === 2 ? 'stderr' : 'stdout', data);
    }
  }
}

export class DockerProcesses implements ProcessStarter {
  readonly canSetUser = true;
  readonly canCloseStdin = true;

  constructor(
    private readonly docker: Dockerode,
    readonly containerId: string,
  ) {}

  async start(spec: ProcessSpec, onOutput: (stream: StreamName, data: Buffer) => void): Promise<Process> {
    const exec = await this.docker.getContainer(this.containerId).exec({
      Cmd: spec.argv,
      AttachStdin: spec.stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      ...(spec.user ? { User: spec.user } : {}),
      ...(spec.cwd ? { WorkingDir: spec.cwd } : {}),
      ...(spec.env ? { Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`) } : {}),
    });
    const socket = (await exec.start({ hijack: true, stdin: spec.stdin })) as Duplex;
    const demux = new FrameDemux(onOutput);
    socket.on('data', (d: Buffer) => demux.push(d));
    socket.on('error', () => socket.destroy());
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    return {
      write: (data) => void socket.write(data),
      send: (data) => (socket.write(data) ? Promise.resolve() : drained(socket)),
      end: (data) => void (data === undefined ? socket.end() : socket.end(data)),
      pause: () => void socket.pause(),
      resume: () => void socket.resume(),
      closed,
      exitCode: () => exitCode(exec),
      destroy: () => socket.destroy(),
    };
  }
}

/** Resolves when a socket can take more, rejects if it closes first. */
function drained(socket: Duplex): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('the connection closed while writing'));
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/** The exit code of an exec whose stream has closed (the engine records it a moment later at most). */
async function exitCode(exec: Dockerode.Exec): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the engine did not record the exit code of a finished exec');
}
