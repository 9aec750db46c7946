/** A violation found by the pure protocol core: the close code to fail the connection with. */
export class ProtocolError extends Error {
  readonly closeCode: number;
  constructor(closeCode: number, message: string) {
    super(message);
    this.name = "ProtocolError";
    this.closeCode = closeCode;
  }
}

export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL = 1002;
export const CLOSE_INVALID_DATA = 1007;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_INTERNAL = 1011;
