/**
 * A socket handed over from one stream to the next (docs/PROTOCOL.md 15.4): the connection to a
 * rendezvous relay ends after its last record, and the end-to-end session starts on the same TCP
 * connection. Bytes that were already read past that last record belong to the new stream; this
 * `Deno.Conn` hands them out first, then reads the socket.
 *
 * What it does not do: parse anything, or copy between sockets (the relay's splice does).
 *
 * @module
 */

/** A `Deno.TcpConn` whose first reads return `leftover`, then the socket's bytes. */
export class SplicedSocket implements Deno.TcpConn {
  #conn: Deno.TcpConn;
  #leftover: Uint8Array;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;

  /**
   * @param conn the socket (a TCP connection)
   * @param leftover bytes read from it past the previous stream's end
   */
  constructor(conn: Deno.Conn, leftover: Uint8Array) {
    this.#conn = conn as Deno.TcpConn;
    this.#leftover = leftover;
  }

  get localAddr(): Deno.NetAddr {
    return this.#conn.localAddr;
  }

  get remoteAddr(): Deno.NetAddr {
    return this.#conn.remoteAddr;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#leftover.length === 0) return this.#conn.read(buffer);
    const n = Math.min(buffer.length, this.#leftover.length);
    buffer.set(this.#leftover.subarray(0, n));
    this.#leftover = this.#leftover.subarray(n);
    return Promise.resolve(n);
  }

  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  close(): void {
    this.#conn.close();
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite();
  }

  ref(): void {
    this.#conn.ref();
  }

  unref(): void {
    this.#conn.unref();
  }

  setNoDelay(noDelay?: boolean): void {
    if ("setNoDelay" in this.#conn) this.#conn.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive?: boolean): void {
    if ("setKeepAlive" in this.#conn) this.#conn.setKeepAlive(keepAlive);
  }

  /** The same bytes as `read()`, leftover first, as a stream. */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    this.#readable ??= new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        const buffer = new Uint8Array(64 * 1024);
        const n = await this.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.slice(0, n));
      },
    });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return this.#conn.writable;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
