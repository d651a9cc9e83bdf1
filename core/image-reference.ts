/**
 * The Docker/OCI image reference grammar (github.com/distribution/reference), as one regular
 * expression the API validates with and the OpenAPI document publishes as the field's pattern:
 *
 *   reference := [domain "/"] path [":" tag] ["@" digest]
 *   domain    := host [":" port]          host := DNS name | "[" IPv6 "]"
 *   path      := component ("/" component)*,  component := [a-z0-9]+ (([._]|__|-+) [a-z0-9]+)*
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := "sha256:" hex{64} | "sha384:" hex{96} | "sha512:" hex{128}   (lowercase hex)
 *
 * The reference grammar allows any digest algorithm, but the engines accept only these; anything else
 * would pass the API and then fail in the engine.
 * Docker caps a repository name at 255 characters; Tidebox caps the whole reference there too,
 * which leaves room for any tag or sha256 digest on a name of ordinary length.
 */
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const host = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])`;
const domain = `${host}(?::[0-9]{1,5})?`;
const pathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const path = `${pathComponent}(?:/${pathComponent})*`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})';

const IMAGE_REFERENCE_PATTERN = `^(?:${domain}/)?${path}(?::${tag})?(?:@${digest})?$`;
export const IMAGE_REFERENCE = new RegExp(IMAGE_REFERENCE_PATTERN);
export const MAX_IMAGE_REFERENCE_LENGTH = 255;

/** Why `ref` is not an image reference the engines accept, or undefined when it is one. */
export function imageReferenceProblem(ref: string): string | undefined {
  if (ref.length === 0) return 'image.uri must not be empty';
  if (ref.length > MAX_IMAGE_REFERENCE_LENGTH) return `image.uri must be at most ${MAX_IMAGE_REFERENCE_LENGTH} characters`;
  if (!IMAGE_REFERENCE.test(ref))
    return 'image.uri is not an image reference: [registry[:port]/]name[:tag][@digest], the name in lowercase letters, digits and separators (. _ __ -)';
  return undefined;
}

/**
 * Why a tenant may not name this image in `image.uri`, or undefined. The engine resolves a bare hex
 * string with no tag as an image ID or ID prefix when no image has that name (any image on the host,
 * another tenant's too), and `sha256:…` as an ID; snapshot images are reached only through `snapshotId`, which is owner-checked.
 */
export function imageAccessProblem(ref: string, snapshotRepository: string): string | undefined {
  if (/^[a-f0-9]+$/.test(ref) || ref.startsWith('sha256:'))
    return 'image.uri must name an image by repository[:tag] or @digest, not by image ID or ID prefix';
  const name = ref.split('@')[0]!.replace(/:[\w][\w.-]*$/, '');
  const repository = name.replace(/^(docker\.io\/)?(library\/)?/, '');
  if (repository === snapshotRepository) return `image.uri must not name the snapshot repository; restore a snapshot with snapshotId`;
  return undefined;
}
