import { IMAGE_REFERENCE, imageAccessProblem, imageReferenceProblem } from '../../core/image-reference';
import { createSandboxRequestSchema } from '../../core/schemas';
import { parseConfig } from '../../core/config';

describe('image references', () => {
  it.each([
    'busybox',
    'tidebox/busybox:latest',
    'registry.example.com:5000/org/repo:v1.2-rc_3',
    'localhost/a__b/c-d--e.f',
    '[::1]:5000/x',
    `busybox@sha256:${'a'.repeat(64)}`,
    `a/b:tag@sha256:${'0'.repeat(64)}`,
    'tidebox-snapshots:abc-123',
  ])('when the reference is %s, then it is accepted', (ref) => {
    expect(imageReferenceProblem(ref)).toBeUndefined();
  });

  it.each([
    ['spaces and a star', 'Bad Image*x', 'is not an image reference'],
    ['an uppercase name (no registry)', 'Upper', 'is not an image reference'],
    ['300 characters', 'a'.repeat(300), 'at most 255 characters'],
    ['an empty tag', 'busybox:', 'is not an image reference'],
    ['a leading separator', '-lead', 'is not an image reference'],
    ['an empty path component', 'a//b', 'is not an image reference'],
    ['two tags', 'a:b:c', 'is not an image reference'],
    ['an absolute path', '/abs', 'is not an image reference'],
    ['a URL', 'http://x/y', 'is not an image reference'],
    ['three underscores', 'a___b', 'is not an image reference'],
    ['a short digest', 'a@sha256:abc', 'is not an image reference'],
    ['a digest algorithm the engines do not know', `a@h_x:${'4'.repeat(64)}`, 'is not an image reference'],
    ['an uppercase digest', `a@sha256:${'A'.repeat(64)}`, 'is not an image reference'],
    ['nothing', '', 'must not be empty'],
  ])('when the reference has %s, then it is refused', (_what, ref, message) => {
    expect(imageReferenceProblem(ref)).toContain(message);
  });

  it('when the create schema is published, then image.uri carries the same pattern and length', () => {
    const schema = createSandboxRequestSchema(parseConfig({}).sandbox).toJSONSchema({ target: 'draft-2020-12', io: 'input' }) as any;
    expect(schema.properties.image.properties.uri).toMatchObject({ pattern: IMAGE_REFERENCE.source, maxLength: 255 });
  });
});

describe('images a tenant may name', () => {
  it.each([
    ['an image ID prefix', '9411324131cc', 'not by image ID'],
    ['a full image ID', 'a'.repeat(64), 'not by image ID'],
    ['a bare digest', `sha256:${'a'.repeat(64)}`, 'not by image ID'],
    ['the snapshot repository', 'tidebox-snapshots:0c434818-83bc-4e77-b183-8eba1881f28f', 'snapshotId'],
    ['the snapshot repository under docker.io/library', 'docker.io/library/tidebox-snapshots:x', 'snapshotId'],
  ])('when image.uri is %s, then it is refused', (_what, ref, message) => {
    expect(imageAccessProblem(ref, 'tidebox-snapshots')).toContain(message);
  });

  it.each([
    'busybox',
    'tidebox/busybox:latest',
    'cafe-app:1',
    `busybox@sha256:${'a'.repeat(64)}`,
    'registry.example.com/tidebox-snapshots:x',
  ])('when image.uri is %s, then it may be named', (ref) => {
    expect(imageAccessProblem(ref, 'tidebox-snapshots')).toBeUndefined();
  });
});
