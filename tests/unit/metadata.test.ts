import { applyMetadataPatch, metadataPatchProblems, metadataProblems } from '../../core/metadata';

describe('metadata rules (Kubernetes labels)', () => {
  it.each([[{ team: 'core' }], [{ 'example.com/team': 'core-1_a.b' }], [{ a: '' }], [{ ['k'.repeat(63)]: 'v'.repeat(63) }]])(
    'when metadata is %j, then it is valid',
    (metadata) => {
      expect(metadataProblems(metadata)).toEqual([]);
    },
  );

  it.each([
    [{ 'opensandbox.io/x': 'y' }, 'reserved prefix'],
    [{ 'tidebox.io/x': 'y' }, 'reserved prefix'],
    [{ 'a=b': 'y' }, 'the name must be'],
    [{ '-a': 'y' }, 'the name must be'],
    [{ ['k'.repeat(64)]: 'y' }, 'the name must be'],
    [{ 'Example.com/a': 'y' }, 'DNS subdomain'],
    [{ [`${'a'.repeat(64)}.com/x`]: 'y' }, 'DNS subdomain'],
    [{ a: 'has space' }, 'metadata value of "a"'],
    [{ a: 'v'.repeat(64) }, 'metadata value of "a"'],
    [{ a: 'ends-' }, 'metadata value of "a"'],
    [Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`key-${i}`, 'v'.repeat(50)])), 'metadata is too large'],
  ])('when metadata is %j, then it is refused (%s)', (metadata, message) => {
    expect(metadataProblems(metadata).join('; ')).toContain(message);
  });
});

describe('metadata merge patch (RFC 7396)', () => {
  it('when a patch sets, replaces and deletes keys, then absent keys are kept and deleting a missing key is a no-op', () => {
    expect(applyMetadataPatch({ a: '1', b: '2', c: '3' }, { a: 'x', b: null, d: '4', zzz: null })).toEqual({ a: 'x', c: '3', d: '4' });
    expect(applyMetadataPatch({ a: '1' }, {})).toEqual({ a: '1' });
  });

  it('when a patch sets a bad key or value, or deletes a reserved key, then it is refused; deleting any other key is allowed', () => {
    expect(metadataPatchProblems({}, { 'opensandbox.io/a': 'x' })[0]).toContain('reserved prefix');
    expect(metadataPatchProblems({}, { 'tidebox.io/a': null })[0]).toContain('reserved prefix');
    expect(metadataPatchProblems({}, { a: 'bad value' })[0]).toContain('metadata value');
    expect(metadataPatchProblems({ a: '1' }, { a: null })).toEqual([]);
  });

  it('when a valid patch would make the merged metadata too large, then it is refused', () => {
    const current = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`key-${i}`, 'v'.repeat(50)]));
    const patch = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`more-${i}`, 'w'.repeat(50)]));
    expect(metadataPatchProblems(current, patch)[0]).toContain('metadata is too large');
  });
});
