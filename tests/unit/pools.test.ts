import { parseConfig } from '../../core/config';
import { normalizeCreateRequest } from '../../core/create-request';
import { capacityProblem, claimRequest, membersToDrain, membersToWarm, type PoolMember, runsAsAsked } from '../../core/pools';
import { createSandboxRequestSchema } from '../../core/schemas';

/** The pure rules of warm pools (core/pools.ts): capacity, what to warm and drain, what a claim runs. */
const member = (state: PoolMember['state'], generation = 1, since = 0): PoolMember => ({ state, generation, since });
const ledger = (...states: Array<PoolMember['state'] | [PoolMember['state'], number, number]>) =>
  Object.fromEntries(states.map((s, i) => [`m${i}`, Array.isArray(s) ? member(...s) : member(s)]));

describe('pool capacity', () => {
  const cap = { bufferMin: 2, bufferMax: 3, poolMin: 0, poolMax: 4 };

  it('when bounds contradict each other or exceed the server cap, then the problem is named', () => {
    expect(capacityProblem(cap, 20)).toBeUndefined();
    expect(capacityProblem({ ...cap, bufferMin: 4 }, 20)).toMatch(/bufferMin/);
    expect(capacityProblem({ ...cap, poolMin: 5 }, 20)).toMatch(/poolMin/);
    expect(capacityProblem({ ...cap, bufferMax: 5 }, 20)).toMatch(/bufferMax/);
    expect(capacityProblem(cap, 3)).toMatch(/at most 3/);
  });

  it('when ready and warming members are fewer than bufferMin, then enough are warmed, never past bufferMax or poolMax', () => {
    expect(membersToWarm({}, cap)).toBe(2);
    expect(membersToWarm(ledger('ready'), cap)).toBe(1);
    expect(membersToWarm(ledger('ready', 'warming'), cap)).toBe(0);
    // Claimed members count toward poolMax: 3 claimed leave room for one.
    expect(membersToWarm(ledger('claimed', 'claimed', 'claimed'), cap)).toBe(1);
    // Members being removed still hold the host: they count too.
    expect(membersToWarm(ledger('claimed', 'claimed', 'draining', 'draining'), cap)).toBe(0);
    // poolMin above the buffer: warm up to it, within bufferMax.
    expect(membersToWarm({}, { bufferMin: 0, bufferMax: 3, poolMin: 2, poolMax: 4 })).toBe(2);
  });

  it('when ready members exceed bufferMax or come from an older template, then those are drained, oldest first', () => {
    const members = ledger(['ready', 1, 10], ['ready', 2, 30], ['ready', 2, 20], ['ready', 2, 40], ['ready', 2, 50], 'claimed');
    // m0 is stale; of the four current ones the oldest (m2, since 20) is past bufferMax 3.
    expect(membersToDrain(members, cap, 2).sort()).toEqual(['m0', 'm2']);
    expect(membersToDrain(ledger('ready', 'warming'), cap, 1)).toEqual([]);
  });
});

describe('what a claim runs', () => {
  const template = {
    image: { uri: 'img:1' },
    entrypoint: ['/bin/serve'],
    resourceLimits: { cpu: '500m', memory: '256Mi' },
    env: { A: '1' },
    timeout: 60,
  };

  it("when a claim gives its own timeout and metadata, then those replace the template's and the rest is the template", () => {
    expect(claimRequest(template, { timeout: 300, metadata: { team: 'blue' }, extensions: { poolRef: 'p' } })).toEqual({
      ...template,
      timeout: 300,
      metadata: { team: 'blue' },
    });
    const { timeout: _t, ...rest } = template;
    expect(claimRequest(template, { extensions: { poolRef: 'p' } })).toEqual(rest);
  });

  it("when a claim repeats the template's fields, sends them empty or as the SDKs' defaults, then it is accepted", () => {
    const sdk = {
      image: { uri: 'img:1' },
      entrypoint: ['tail', '-f', '/dev/null'],
      resourceLimits: { cpu: '1', memory: '2Gi' },
      env: {},
      secureAccess: false,
      metadata: {},
      extensions: { poolRef: 'p' },
    };
    expect(claimRequest(template, sdk)).toMatchObject({
      entrypoint: ['/bin/serve'],
      resourceLimits: template.resourceLimits,
      env: { A: '1' },
    });
    expect(claimRequest(template, { ...template, extensions: { poolRef: 'p' } })).toMatchObject({ image: { uri: 'img:1' } });
  });

  it('when a claim asks for another image, entrypoint, env or extension, then it is refused naming the field', () => {
    expect(() => claimRequest(template, { image: { uri: 'other:1' } })).toThrow(/image comes from the pool's template/);
    expect(() => claimRequest(template, { entrypoint: ['/bin/sh'] })).toThrow(/entrypoint/);
    expect(() => claimRequest(template, { env: { B: '2' } })).toThrow(/env/);
    expect(() => claimRequest(template, { volumes: [{ name: 'v' }] })).toThrow(/volumes/);
    expect(() => claimRequest(template, { extensions: { poolRef: 'p', 'tidebox.io/ports': '3000' } })).toThrow(/tidebox.io\/ports/);
  });
});

describe('what a transparent claim may take', () => {
  const config = parseConfig({});
  const schema = createSandboxRequestSchema(config.sandbox);
  const spec = (body: Record<string, unknown>) =>
    normalizeCreateRequest(
      schema.parse({
        image: { uri: 'busybox:1.36' },
        entrypoint: ['tail', '-f', '/dev/null'],
        resourceLimits: { cpu: '250m', memory: '64Mi' },
        ...body,
      }),
      config.sandbox,
      { tenant: 'acme' },
    );

  it('when only the timeout, the metadata or the order of keys differ, then the member runs as asked', () => {
    const member = spec({ env: { A: '1', B: '2' }, timeout: 600 });
    expect(runsAsAsked(member, spec({ env: { B: '2', A: '1' }, timeout: 60, metadata: { who: 'me' } }))).toBe(true);
  });

  it('when image, entrypoint, resources, env or ports differ, then it does not', () => {
    const member = spec({ env: { A: '1' } });
    for (const other of [
      { image: { uri: 'busybox:1.37' }, env: { A: '1' } },
      { entrypoint: ['sleep', '60'], env: { A: '1' } },
      { resourceLimits: { cpu: '500m', memory: '64Mi' }, env: { A: '1' } },
      { env: { A: '2' } },
      {},
      { env: { A: '1' }, extensions: { 'tidebox.io/ports': '3000' } },
    ])
      expect(runsAsAsked(member, spec(other))).toBe(false);
  });
});
