// A message received piece by piece (wsRecvStream): the receive path pushes
// the payload's pieces as it parses them, the application takes them with
// next(dl). Parsing pauses while STREAM_HIGH bytes wait to be taken, so a
// message of any size costs a few pieces of memory.
import { DillError } from "../runtime/errors";
import { Fifo } from "../runtime/fifo";
import { wait, Wait, type CallOptions } from "../runtime/wait";

/** Bytes of pieces not yet taken at which parsing of the message pauses. */
export const STREAM_HIGH = 256 << 10;

/** What the stream asks of the receive path. */
export interface StreamSource {
  /** Parsing may go on: pieces were taken below the bound. */
  resume(): void;
}

class NextWait extends Wait<Uint8Array | null> {
  readonly st: WsStream;
  constructor(st: WsStream, syscall: string) {
    super(syscall);
    this.st = st;
  }
  protected start(): void { this.st.waiters.push(this); }
  protected stop(): void { this.st.waiters.remove(this); }
}

const STEP_END: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** The message being received as a stream: its type, and its pieces as they come. */
export class WsStream implements AsyncIterable<Uint8Array> {
  readonly flags: number;
  private readonly src: StreamSource;
  private readonly pieces = new Fifo<Uint8Array>();
  private queued = 0;
  /** The last piece has been pushed. */
  private ended = false;
  /** Why no more pieces will come (the connection failed, a later receive skipped the rest), or null. */
  private error: DillError | null = null;
  /** @internal */
  readonly waiters = new Fifo<NextWait>();

  constructor(flags: number, src: StreamSource) {
    this.flags = flags;
    this.src = src;
  }

  /** Whether parsing must pause until pieces are taken. */
  get full(): boolean { return this.queued >= STREAM_HIGH; }

  /** @internal The receive path's next piece (a view it no longer uses). */
  push(piece: Uint8Array): void {
    const w = this.waiters.shift();
    if (w !== undefined) { w.ok(piece); return; }
    this.pieces.push(piece);
    this.queued += piece.length;
  }

  /** @internal The message is complete. */
  end(): void {
    this.ended = true;
    for (const w of this.waiters.drain()) w.ok(null);
  }

  /** @internal No more pieces will come: the waiting and later next() calls fail with e (pieces already here are still given). */
  fail(e: DillError): void {
    if (this.ended || this.error !== null) return;
    this.error = e;
    for (const w of this.waiters.drain()) w.fail(new DillError(e.code, w.syscall, e.detail));
  }

  /**
   * The next piece of the payload, or null after the last. A deadline or
   * cancellation loses nothing: the piece stays for the next call.
   */
  next(dl: number, opts?: CallOptions): Promise<Uint8Array | null> {
    const p = this.pieces.shift();
    if (p !== undefined) {
      const wasFull = this.full;
      this.queued -= p.length;
      if (wasFull && !this.full) this.src.resume();
      return Promise.resolve(p);
    }
    if (this.ended) return Promise.resolve(null);
    if (this.error !== null) return Promise.reject(new DillError(this.error.code, "wsRecvStream", this.error.detail));
    return wait(new NextWait(this, "wsRecvStream"), dl, opts);
  }

  /** The pieces, until the end of the message; leaving the loop early skips the rest at the next receive. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        const p = await this.next(-1);
        return p === null ? STEP_END : { value: p, done: false };
      },
      return: (): Promise<IteratorResult<Uint8Array>> => Promise.resolve(STEP_END),
    };
  }
}
