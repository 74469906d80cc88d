// Names for devices, shown to users in their list of sessions.

/** Largest subject and label the database accepts, in bytes (UTF-8). */
export const maxSubjectBytes = 256;

/**
 * A label as the database takes it: well-formed, without control characters, at most 256 bytes
 * (cut at a character boundary). Undefined when nothing is left.
 */
export function cleanLabel(text: string): string | undefined {
  let label = text
    .toWellFormed()
    .replace(/\p{Cc}+/gu, ' ')
    .trim();
  while (Buffer.byteLength(label) > maxSubjectBytes) label = [...label].slice(0, -1).join('');
  return label === '' ? undefined : label;
}

const browsers: readonly (readonly [RegExp, string])[] = [
  [/\bEdg(?:e|A|iOS)?\//, 'Edge'],
  [/\bOPR\/|\bOpera\b/, 'Opera'],
  [/\bFirefox\/|\bFxiOS\//, 'Firefox'],
  [/\bChrome\/|\bCriOS\//, 'Chrome'],
  [/\bSafari\//, 'Safari'],
];
// Android and iOS first: their user agents also name Linux and "Mac OS X".
const systems: readonly (readonly [RegExp, string])[] = [
  [/\bAndroid\b/, 'Android'],
  [/\b(?:iPhone|iPad|iPod)\b/, 'iOS'],
  [/\bWindows\b/, 'Windows'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b/, 'Linux'],
];

/**
 * A short, human name for a device from its User-Agent header, for the `label` option:
 * "Firefox on Linux", "Safari on iOS"; for other clients their first product name ("curl");
 * "Unknown device" without a User-Agent. Only a label: user agents are chosen by the client.
 */
export function deviceLabel(userAgent: string | undefined): string {
  const ua = userAgent ?? '';
  const browser = browsers.find(([re]) => re.test(ua))?.[1];
  const system = systems.find(([re]) => re.test(ua))?.[1];
  if (browser !== undefined && system !== undefined) return `${browser} on ${system}`;
  const name = browser ?? system ?? /^[^\s/;()]{1,40}/.exec(ua)?.[0];
  return (name === undefined ? undefined : cleanLabel(name)) ?? 'Unknown device';
}
