import { logFormat, prettyLine, prettyStream } from '../../platform/log';

const at = Date.parse('2026-12-02T16:40:24.123Z');

describe('log lines', () => {
  it('when the format is auto, then a terminal gets pretty lines and anything else JSON', () => {
    expect(logFormat('auto', true)).toBe('pretty');
    expect(logFormat('auto', undefined)).toBe('json');
    expect(logFormat('json', true)).toBe('json');
    expect(logFormat('pretty', false)).toBe('pretty');
  });

  it('when a request is logged, then its line says method, path, status and time, then whose it was', () => {
    const line = prettyLine({
      level: 30,
      time: at,
      pid: 1,
      hostname: 'h',
      requestId: 'r-1',
      tenant: 'acme',
      msg: 'request',
      method: 'POST',
      path: '/v1/sandboxes',
      status: 202,
      ms: 12.5,
    });
    expect(line).toBe('16:40:24.123 INFO  POST /v1/sandboxes → 202 (12.5 ms)  requestId=r-1  tenant=acme');
  });

  it('when a record has a message, fields and an error, then the line has them and an error stack follows indented', () => {
    const line = prettyLine({
      level: 'error',
      time: at,
      msg: 'request failed',
      sandboxId: 'abc',
      note: 'two words',
      err: { message: 'boom', stack: 'Error: boom\n    at f (x.js:1:1)' },
    });
    expect(line).toBe('16:40:24.123 ERROR request failed  err=boom  sandboxId=abc  note="two words"\n    at f (x.js:1:1)');
  });

  it('when pino writes JSON lines to the pretty stream, then each comes out as one line; what is not JSON passes through', () => {
    let out = '';
    const stream = prettyStream({ write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream);
    stream.write(`${JSON.stringify({ level: 40, time: at, msg: 'careful' })}\nnot json\n`);
    expect(out).toBe('16:40:24.123 WARN  careful\nnot json\n');
  });
});

describe('log lines against forgery', () => {
  it('when a message or path holds a newline, then it is escaped and the record stays one line', () => {
    const line = prettyLine({ level: 30, time: at, method: 'POST', path: '/v1/x\n16:40:24.123 INFO  forged', status: 404, ms: 1 });
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain('/v1/x\\n16:40:24.123 INFO  forged');
  });
});
