// Device names from user agents, and labels as the database takes them (moved from
// adapters-subject.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cleanLabel, deviceLabel } from '../../src/device-label.js';

describe('labels', () => {
  test('deviceLabel names common browsers and systems, and other clients by their product', () => {
    const cases: [string | undefined, string][] = [
      ['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', 'Firefox on Linux'],
      [
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
        'Safari on iOS',
      ],
      [
        'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36',
        'Chrome on Android',
      ],
      [
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0',
        'Edge on Windows',
      ],
      [
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
        'Safari on macOS',
      ],
      ['curl/8.5.0', 'curl'],
      [undefined, 'Unknown device'],
      ['', 'Unknown device'],
    ];
    for (const [ua, label] of cases) assert.equal(deviceLabel(ua), label, String(ua));
  });

  test('cleanLabel keeps what the database takes: no control characters, well-formed, at most 256 bytes', () => {
    assert.equal(cleanLabel(' a\u0000b\nc '), 'a b c');
    assert.equal(cleanLabel('\ud800x'), '\ufffdx');
    assert.equal(cleanLabel('\u0001'), undefined);
    const long = cleanLabel('é'.repeat(200));
    assert.equal(long, 'é'.repeat(128));
  });
});
