;; The WebAssembly SIMD masking kernel that simd.ts loads: XORs mem[0, len)
;; with a 4-byte key, 64 then 16 bytes per turn, then byte by byte.
;; simd.ts holds these bytes assembled; test/ws/core/simd.test.ts assembles
;; this file with wabt and checks that they are the same, byte for byte.
;; Loads and stores use align=1: the block may start anywhere.
(module
  (memory (export "mem") 2)                       ;; 128 KiB: one block
  (func (export "mask") (param $len i32) (param $key i32)
    (local $i i32) (local $end i32) (local $k v128)
    (local.set $k (i32x4.splat (local.get $key)))
    (local.set $end (i32.and (local.get $len) (i32.const -64)))
    (block (loop                                  ;; 64 bytes a turn: less loop overhead per byte
      (br_if 1 (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store offset=0 align=1 (local.get $i)
        (v128.xor (v128.load offset=0 align=1 (local.get $i)) (local.get $k)))
      (v128.store offset=16 align=1 (local.get $i)
        (v128.xor (v128.load offset=16 align=1 (local.get $i)) (local.get $k)))
      (v128.store offset=32 align=1 (local.get $i)
        (v128.xor (v128.load offset=32 align=1 (local.get $i)) (local.get $k)))
      (v128.store offset=48 align=1 (local.get $i)
        (v128.xor (v128.load offset=48 align=1 (local.get $i)) (local.get $k)))
      (local.set $i (i32.add (local.get $i) (i32.const 64)))
      (br 0)))
    (local.set $end (i32.and (local.get $len) (i32.const -16)))
    (block (loop                                  ;; then 16 bytes a turn
      (br_if 1 (i32.ge_u (local.get $i) (local.get $end)))
      (v128.store align=1 (local.get $i)
        (v128.xor (v128.load align=1 (local.get $i)) (local.get $k)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br 0)))
    (block (loop                                  ;; the last 0..15 bytes
      (br_if 1 (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (local.get $i)
        (i32.xor (i32.load8_u (local.get $i))
          (i32.shr_u (local.get $key)
            (i32.shl (i32.and (local.get $i) (i32.const 3)) (i32.const 3)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br 0)))))
