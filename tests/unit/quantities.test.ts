import { parseCpuMillis, parseMemoryBytes } from '../../core/quantities';

describe('resource quantities', () => {
  it.each([
    ['500m', 500],
    ['1', 1000],
    ['2.5', 2500],
    ['0.1', 100],
    [' 250m ', 250],
  ])('when cpu is %p, then it is %p millicores', (input, millis) => expect(parseCpuMillis(input)).toBe(millis));

  it.each(['abc', '', '-1', '0', '0m', '1.5m.', '1Gi', '0.0001'])('when cpu is %p, then it is rejected', (input) =>
    expect(parseCpuMillis(input)).toBeUndefined(),
  );

  it.each([
    ['512Mi', 512 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1G', 1e9],
    ['64M', 64e6],
    ['1024', 1024],
    ['1.5Gi', 1.5 * 2 ** 30],
  ])('when memory is %p, then it is %p bytes', (input, bytes) => expect(parseMemoryBytes(input)).toBe(bytes));

  it.each(['abc', '', '-1Mi', '12XB', 'Mi', '0'])('when memory is %p, then it is rejected', (input) =>
    expect(parseMemoryBytes(input)).toBeUndefined(),
  );
});
