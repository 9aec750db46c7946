// The SIMD masking kernel's bytes (lib/ws/core/simd.ts) are the assembly of its
// source, lib/ws/core/mask.wat: wabt assembles the text here and the two must
// match byte for byte, so nobody edits opcodes by hand.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import initWabt from "wabt";
import { describe, expect, it } from "vitest";
import { loadSimdMasker, SIMD_BLOCK, SIMD_MODULE } from "../../../lib/ws/core/simd";

const watPath = fileURLToPath(new URL("../../../lib/ws/core/mask.wat", import.meta.url));

describe("mask.wat", () => {
  it("assembles (wabt) to exactly the bytes simd.ts loads", async () => {
    const wabt = await initWabt();
    const mod = wabt.parseWat("mask.wat", readFileSync(watPath, "utf8"), { simd: true });
    try {
      mod.validate();
      const { buffer } = mod.toBinary({ write_debug_names: false });
      expect(Buffer.from(buffer).toString("hex")).toBe(Buffer.from(SIMD_MODULE).toString("hex"));
    } finally {
      mod.destroy();
    }
  });

  it("the loaded kernel masks a block as the byte loop does", () => {
    const m = loadSimdMasker();
    expect(m).not.toBeNull();
    const n = 1000 + 13; // all three loops: 64-byte, 16-byte and byte turns
    const src = Buffer.alloc(n);
    for (let i = 0; i < n; i++) src[i] = (i * 31 + 7) & 0xff;
    m!.mem.set(src, 0);
    const key = 0x78563412;
    m!.mask(n, key);
    for (let i = 0; i < n; i++) expect(m!.mem[i]).toBe(src[i]! ^ ((key >>> ((i & 3) * 8)) & 0xff));
    expect(m!.mem.length).toBe(SIMD_BLOCK);
  });
});
