import { randomBytes } from 'node:crypto';
import { Sandbox } from '@alibaba-group/opensandbox';

/**
 * The SDK side of the execd part's 20 MB transfers, in a process of its own, as `docker cp` is a
 * process of its own: in the bench's process the SDK's encoding paid for GCs of a heap the earlier
 * parts had grown (the same Tidebox measured 171–178 ms per upload from a fresh process, 248–279
 * from one holding 150 MB more; docs/benchmarks.md). Asked `up` or `down` over IPC, it answers the
 * call's time in ms, timed here around the SDK call alone.
 */
interface Args {
  domain: string;
  apiKey: string;
  sandboxId: string;
  path: string;
  bytes: number;
}

async function main(): Promise<void> {
  const { domain, apiKey, sandboxId, path, bytes } = JSON.parse(process.argv[2]!) as Args;
  const sandbox = await Sandbox.connect({ sandboxId, connectionConfig: { domain, apiKey } });
  const data = randomBytes(bytes);
  const send = (m: unknown) => process.send!(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (op: 'up' | 'down') => {
    const t = process.hrtime.bigint();
    const call =
      op === 'up'
        ? sandbox.files.writeFiles([{ path, data }])
        : sandbox.files.readBytes(path).then((read) => {
            if (read.length !== bytes) throw new Error(`read ${read.length} bytes, not ${bytes}`);
          });
    call.then(
      () => send({ ms: Number(process.hrtime.bigint() - t) / 1e6 }),
      (err: unknown) => send({ error: String(err) }),
    );
  });
  send({ ready: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
