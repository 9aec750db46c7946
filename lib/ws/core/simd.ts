// A WebAssembly SIMD kernel that XORs a buffer with a 4-byte key, 16 bytes
// per instruction. WebAssembly cannot read JavaScript memory, so callers copy
// a block into its memory, mask it there and copy it out: two native copies
// and a SIMD pass still beat a JavaScript word loop from 512 bytes on, by
// about 1.5x at 1 KiB, 3x at 4 KiB and 6x from 16 KiB up.
//
// The module's source is mask.wat beside this file; the bytes below are its
// assembly (no build step, no native addon), and a test assembles mask.wat
// with wabt and checks that they are the same. Change the .wat first, then
// these bytes, until the test passes.
//
// The key word is little-endian: its low byte masks offset 0 of the block.

const BODY = [
  0x02, 0x02, 0x7f, 0x01, 0x7b, //                  locals: 2 x i32 ($i $end), 1 x v128 ($k)
  0x20, 0x01, 0xfd, 0x11, 0x21, 0x04, //            $k = i32x4.splat($key)
  0x20, 0x00, 0x41, 0x40, 0x71, 0x21, 0x03, //      $end = $len & -64
  0x02, 0x40, 0x03, 0x40, //                        block loop
  0x20, 0x02, 0x20, 0x03, 0x4f, 0x0d, 0x01, //        br_if 1 ($i >= $end)
  ...[0x00, 0x10, 0x20, 0x30].flatMap((off) => [ // for offset 0, 16, 32, 48:
    0x20, 0x02, 0x20, 0x02, 0xfd, 0x00, 0x00, off, // $i, v128.load offset
    0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x00, off, // xor $k, v128.store offset
  ]),
  0x20, 0x02, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x02, //  $i += 64
  0x0c, 0x00, 0x0b, 0x0b, //                          br 0, end, end
  0x20, 0x00, 0x41, 0x70, 0x71, 0x21, 0x03, //      $end = $len & -16
  0x02, 0x40, 0x03, 0x40, //                        block loop
  0x20, 0x02, 0x20, 0x03, 0x4f, 0x0d, 0x01, //        br_if 1 ($i >= $end)
  0x20, 0x02, 0x20, 0x02, 0xfd, 0x00, 0x00, 0x00, //  $i, v128.load $i
  0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x00, 0x00, //  xor $k, v128.store
  0x20, 0x02, 0x41, 0x10, 0x6a, 0x21, 0x02, //        $i += 16
  0x0c, 0x00, 0x0b, 0x0b, //                          br 0, end, end
  0x02, 0x40, 0x03, 0x40, //                        block loop
  0x20, 0x02, 0x20, 0x00, 0x4f, 0x0d, 0x01, //        br_if 1 ($i >= $len)
  0x20, 0x02, 0x20, 0x02, 0x2d, 0x00, 0x00, //        $i, i32.load8_u $i
  0x20, 0x01, 0x20, 0x02, 0x41, 0x03, 0x71, //        $key, $i & 3
  0x41, 0x03, 0x74, 0x76, 0x73, 0x3a, 0x00, 0x00, //  << 3, shr_u, xor, i32.store8
  0x20, 0x02, 0x41, 0x01, 0x6a, 0x21, 0x02, //        $i += 1
  0x0c, 0x00, 0x0b, 0x0b, //                          br 0, end, end
  0x0b, //                                          end of function
];

/** n as unsigned LEB128 (section and body sizes). */
const uleb = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...uleb(n >>> 7)]);
const section = (id: number, bytes: readonly number[]): number[] => [id, ...uleb(bytes.length), ...bytes];

/** The assembled module: exactly what wabt makes of mask.wat (checked by the tests). */
export const SIMD_MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, //                 "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x00]), //             type 0: (i32, i32) -> ()
  ...section(3, [0x01, 0x00]), //                                      func 0 has type 0
  ...section(5, [0x01, 0x00, 0x02]), //                                one memory, 2 pages
  ...section(7, [0x02, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, //          export "mem" = memory 0
    0x04, 0x6d, 0x61, 0x73, 0x6b, 0x00, 0x00]), //                     export "mask" = func 0
  ...section(10, [0x01, ...uleb(BODY.length), ...BODY]), //            code
]);

/** Bytes the kernel masks per call (its whole memory). */
export const SIMD_BLOCK = 2 * 65536;

export interface SimdMasker {
  /** The kernel's memory; a block to mask goes at offset 0. */
  readonly mem: Uint8Array;
  /** XORs mem[0, len) with the little-endian key word (byte 0 masks offset 0). */
  readonly mask: (len: number, key: number) => void;
}

// The little of the WebAssembly API used here (Node's type definitions for v20 leave it out).
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { mem?: unknown; mask?: unknown } };
}

/** The SIMD masker, or null where WebAssembly or its SIMD extension is unavailable (e.g. --jitless). */
export function loadSimdMasker(): SimdMasker | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined) return null;
  try {
    const { exports } = new wasm.Instance(new wasm.Module(SIMD_MODULE));
    const mem = new Uint8Array((exports.mem as { buffer: ArrayBuffer }).buffer);
    const mask = exports.mask as (len: number, key: number) => void;
    return { mem, mask };
  } catch {
    return null; // a V8 built without SIMD rejects the module
  }
}
