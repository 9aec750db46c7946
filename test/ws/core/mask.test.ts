// Masking (lib/ws/core/mask.ts): the word-at-a-time XOR and the WebAssembly SIMD
// kernel (lib/ws/core/simd.ts) against a naive byte loop.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { applyMask, copyMasked, drawMask, maskEngine, maskJs, maskWithKey, SIMD_MIN } from "../../../lib/ws/core/mask";
import { SIMD_BLOCK } from "../../../lib/ws/core/simd";

/** Deterministic pseudo-random bytes (xorshift32). */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x & 0xff;
  };
}

function fill(a: Uint8Array, seed: number): Uint8Array {
  const r = prng(seed);
  for (let i = 0; i < a.length; i++) a[i] = r();
  return a;
}

/** The definition in RFC 6455 5.3: j = i MOD 4, transformed[i] = original[i] XOR key[j]. */
function naive(data: Uint8Array, start: number, end: number, key: Uint8Array, koff: number, phase: number): void {
  for (let i = start; i < end; i++) data[i] = data[i]! ^ key[koff + ((phase + i - start) & 3)]!;
}

const KEYS: Uint8Array[] = [
  Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]),
  Uint8Array.from([0x00, 0x00, 0x00, 0x00]),
  Uint8Array.from([0xff, 0xff, 0xff, 0xff]),
  Uint8Array.from([0x01, 0x80, 0x7f, 0xfe]),
];

describe("applyMask", () => {
  it("unmasks RFC 6455's masked \"Hello\"", () => {
    const key = Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]);
    const data = Uint8Array.from([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    applyMask(data, 0, 5, key, 0, 0);
    expect(Buffer.from(data).toString("latin1")).toBe("Hello");
  });

  it("equals the byte loop for every length 0..140, all 4 phases, all byte offsets 0..7, in place", () => {
    // One backing store; views at every alignment so the aligned-word path meets every head/tail split,
    // and lengths on both sides of the switch from bytes to words (128).
    const backing = new ArrayBuffer(176);
    const ref = new Uint8Array(176);
    let seed = 1;
    for (const key of KEYS) {
      for (let len = 0; len <= 140; len++) {
        for (let phase = 0; phase < 4; phase++) {
          for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
            const view = new Uint8Array(backing, byteOffset, len + 16);
            fill(view, seed++);
            ref.set(view);
            const r = ref.subarray(0, len + 16);
            // Mask a middle stretch [start, start+len) so bytes around it must stay put.
            const start = 5;
            const end = start + len;
            if (end > view.length) continue;
            applyMask(view, start, end, key, 0, phase);
            naive(r, start, end, key, 0, phase);
            if (Buffer.compare(view, r) !== 0) expect(view, `len ${len} phase ${phase} byteOffset ${byteOffset}`).toEqual(r);
          }
        }
      }
    }
  });

  it("equals the byte loop for every start position within a view", () => {
    const key = KEYS[0]!;
    for (let byteOffset = 0; byteOffset < 4; byteOffset++) {
      for (let start = 0; start < 9; start++) {
        for (let len = 0; len <= 40; len++) {
          const buf = new Uint8Array(new ArrayBuffer(64), byteOffset, 60);
          fill(buf, byteOffset * 10007 + start * 101 + len + 1);
          const ref = buf.slice();
          applyMask(buf, start, start + len, key, 0, start);
          naive(ref, start, start + len, key, 0, start);
          if (Buffer.compare(buf, ref) !== 0) expect(buf, `byteOffset ${byteOffset} start ${start} len ${len}`).toEqual(ref);
        }
      }
    }
  });

  it("reads the key at an offset, including from a key stored unaligned", () => {
    for (let koff = 0; koff < 6; koff++) {
      const keyBuf = new Uint8Array(12).fill(0x55);
      keyBuf.set([0xa1, 0xb2, 0xc3, 0xd4], koff);
      for (let phase = 0; phase < 4; phase++) {
        const data = fill(new Uint8Array(67), 99 + koff * 4 + phase);
        const ref = data.slice();
        applyMask(data, 0, data.length, keyBuf, koff, phase);
        naive(ref, 0, ref.length, keyBuf, koff, phase);
        expect(data).toEqual(ref);
      }
    }
  });

  it("works on Node Buffers from the shared pool (arbitrary byteOffset)", () => {
    const key = KEYS[3]!;
    for (let len = 0; len <= 70; len++) {
      const b = Buffer.allocUnsafe(len); // pooled: byteOffset is whatever the pool gives
      fill(b, len + 7);
      const ref = Uint8Array.from(b);
      applyMask(b, 0, len, key, 0, 0);
      naive(ref, 0, len, key, 0, 0);
      expect(Uint8Array.from(b)).toEqual(ref);
    }
  });

  it("masking twice restores the data; phase carries over between chunks", () => {
    const key = KEYS[0]!;
    const orig = fill(new Uint8Array(70), 4242);
    for (let cut = 0; cut <= 70; cut++) {
      // Whole payload at once.
      const whole = orig.slice();
      applyMask(whole, 0, 70, key, 0, 0);
      // Same payload masked in two chunks, the second starting at phase `cut`.
      const a = orig.slice(0, cut);
      const b = orig.slice(cut);
      applyMask(a, 0, a.length, key, 0, 0);
      applyMask(b, 0, b.length, key, 0, cut);
      expect(Uint8Array.from([...a, ...b])).toEqual(whole);
      applyMask(whole, 0, 70, key, 0, 0);
      expect(whole).toEqual(orig);
    }
  });

  it("phase is taken modulo 4", () => {
    const key = KEYS[0]!;
    for (const phase of [4, 5, 6, 7, 1001, 2 ** 31 + 2]) {
      const a = fill(new Uint8Array(33), 17);
      const b = a.slice();
      applyMask(a, 0, 33, key, 0, phase);
      applyMask(b, 0, 33, key, 0, phase % 4);
      expect(a).toEqual(b);
    }
  });

  it("a large buffer equals the byte loop", () => {
    const key = KEYS[3]!;
    const data = new Uint8Array(new ArrayBuffer(70_003), 3, 70_000);
    fill(data, 5);
    const ref = data.slice();
    applyMask(data, 1, 69_998, key, 0, 2);
    naive(ref, 1, 69_998, key, 0, 2);
    expect(Buffer.compare(Buffer.from(data.buffer, data.byteOffset, data.length), Buffer.from(ref))).toBe(0);
  });
});

describe("the SIMD kernel", () => {
  it("loads on this Node (WebAssembly SIMD is on by default since Node 16.4)", () => {
    expect(maskEngine).toBe("wasm-simd");
  });

  it("equals the byte loop around the threshold, the 16-byte step and the block size, at every phase", () => {
    const key = KEYS[0]!;
    const sizes = [SIMD_MIN - 1, SIMD_MIN, SIMD_MIN + 1, SIMD_MIN + 15, 1000, 4096 + 13,
      SIMD_BLOCK - 1, SIMD_BLOCK, SIMD_BLOCK + 1, 2 * SIMD_BLOCK + 7];
    for (const len of sizes) {
      for (let phase = 0; phase < 4; phase++) {
        const data = fill(new Uint8Array(new ArrayBuffer(len + 8), 3, len + 2), len * 4 + phase);
        const ref = data.slice();
        applyMask(data, 1, len + 1, key, 0, phase);
        naive(ref, 1, len + 1, key, 0, phase);
        expect(Buffer.compare(data, ref), `len ${len} phase ${phase}`).toBe(0);
      }
    }
  });

  it("copyMasked equals a copy then the byte loop, and leaves the source and the bytes around untouched", () => {
    for (const len of [0, 3, SIMD_MIN - 1, SIMD_MIN, 5000, SIMD_BLOCK + 5]) {
      const src = fill(new Uint8Array(len), len + 1);
      const srcBefore = src.slice();
      // The key sits just before the payload, as in a frame.
      const dst = new Uint8Array(10 + len + 3).fill(0xee);
      dst.set([0xa1, 0xb2, 0xc3, 0xd4], 6);
      const want = dst.slice();
      want.set(src, 10);
      naive(want, 10, 10 + len, want, 6, 0);
      copyMasked(src, dst, 10, dst, 6);
      expect(Buffer.compare(dst, want), `len ${len}`).toBe(0);
      expect(Buffer.compare(src, srcBefore)).toBe(0);
    }
  });

  it("agrees with the word loop (maskJs) on the same input", () => {
    const key = KEYS[3]!;
    const a = fill(new Uint8Array(70_001), 77);
    const b = a.slice();
    applyMask(a, 2, 70_000, key, 0, 3);
    maskJs(b, 2, 70_000, key, 0, 3);
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it("falls back to the word loop where WebAssembly is unavailable (--jitless)", () => {
    const mod = fileURLToPath(new URL("../../../lib/ws/core/mask.ts", import.meta.url));
    const script = `const m = require(${JSON.stringify(mod)});
      const d = Buffer.alloc(1000, 7); const k = Buffer.from([1, 2, 3, 4]);
      m.applyMask(d, 0, 1000, k, 0, 1);
      let ok = true; for (let i = 0; i < 1000; i++) if (d[i] !== (7 ^ k[(i + 1) & 3])) ok = false;
      console.log(m.maskEngine, typeof WebAssembly, ok);`;
    const out = execFileSync(process.execPath, ["--jitless", "--import", "tsx", "-e", script], { encoding: "utf8", timeout: 60000, stdio: ["ignore", "pipe", "pipe"] });
    expect(out.trim()).toBe("js undefined true");
  });
});

describe("maskWithKey", () => {
  it("equals applyMask with the key's 4 bytes, for the key read little-endian as a signed 32-bit number", () => {
    for (const key of KEYS) {
      const word = Buffer.from(key).readInt32LE(0);
      for (const len of [0, 5, 70, SIMD_MIN + 3, 5000]) {
        for (let phase = 0; phase < 4; phase++) {
          const a = fill(new Uint8Array(len), len + phase + key[0]!);
          const b = a.slice();
          maskWithKey(a, 0, len, word, phase);
          naive(b, 0, len, key, 0, phase);
          expect(Buffer.compare(a, b), `len ${len} phase ${phase}`).toBe(0);
        }
      }
    }
  });
});

describe("drawMask", () => {
  it("writes 4 bytes at the offset and nothing else", () => {
    const dst = new Uint8Array(12).fill(0xee);
    // A key may by chance contain 0xee; draw until it does not, which is near-certain at once.
    for (let tries = 0; tries < 10; tries++) {
      dst.fill(0xee);
      drawMask(dst, 5);
      if (!dst.subarray(5, 9).includes(0xee)) break;
    }
    expect(Array.from(dst.subarray(0, 5))).toEqual([0xee, 0xee, 0xee, 0xee, 0xee]);
    expect(Array.from(dst.subarray(9))).toEqual([0xee, 0xee, 0xee]);
  });

  it("yields varying keys, also across the pool refill", () => {
    // 2,048 keys fit in one pool; draw past a refill or two.
    const seen = new Set<number>();
    const dst = new Uint8Array(4);
    const counts = new Array<number>(256).fill(0);
    const N = 5000;
    let prev = -1;
    let repeats = 0;
    for (let i = 0; i < N; i++) {
      drawMask(dst, 0);
      const k = new DataView(dst.buffer).getUint32(0);
      if (k === prev) repeats++;
      prev = k;
      seen.add(k);
      for (const b of dst) counts[b]!++;
    }
    // Collisions among 5,000 random 32-bit values are very rare; allow a few.
    expect(seen.size).toBeGreaterThan(N - 5);
    expect(repeats).toBeLessThan(3);
    // Every byte value shows up (20,000 bytes over 256 values: expected ~78 each).
    expect(counts.every((c) => c > 20)).toBe(true);
  });
});
