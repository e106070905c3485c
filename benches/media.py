"""The media benchmark's upstream and clients (run by benches/media.sh, not alone).

  media.py upstream PORT            an OpenAI-kind audio upstream: reads uploads whole (length or
                                    chunked) and answers a transcription; speech is sent as
                                    PIECES pieces GAP_MS apart, each stamped with when it was sent
  media.py upload URL FILE RUNS [AT_ONCE [MBPS]]
                                    RUNS uploads of FILE as a transcription form, AT_ONCE at a
                                    time (default 1), sent as fast as the socket takes it or
                                    paced to MBPS megabytes a second (a client on a real
                                    network); prints the median and best wall time in ms
  media.py speech URL RUNS          RUNS speech requests; prints how long each piece took from the
                                    upstream's send to the client's read (ms: median, p99)

Stamps use CLOCK_MONOTONIC, shared by the upstream and the client on one machine.
"""

import asyncio
import statistics
import struct
import sys
import time

PIECES = 20
GAP_MS = 10
PIECE = 4096
BOUNDARY = b"benchb0undary"


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return lines[0], fields


async def read_body(reader, fields):
    if "content-length" in fields:
        left = int(fields["content-length"])
        while left:
            left -= len(await reader.read(min(left, 1 << 16)))
        return
    while True:  # chunked
        size = int((await reader.readline()).split(b";")[0], 16)
        if size:
            await reader.readexactly(size)
        await reader.readline()
        if size == 0:
            return


async def upstream(reader, writer):
    try:
        while True:
            line, fields = await read_head(reader)
            await read_body(reader, fields)
            if "/audio/speech" in line:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: audio/pcm\r\ntransfer-encoding: chunked\r\n\r\n")
                for _ in range(PIECES):
                    await asyncio.sleep(GAP_MS / 1000)
                    piece = struct.pack("<d", time.monotonic()) + b"\0" * (PIECE - 8)
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                body = b'{"text":"ok","usage":{"type":"duration","seconds":1}}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def serve(port):
    server = await asyncio.start_server(upstream, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def connect(url):
    host, port = url.split("//")[1].split("/")[0].split(":")
    return asyncio.open_connection(host, int(port))


async def upload(url, path, runs, at_once=1, mbps=0.0):
    with open(path, "rb") as f:
        audio = f.read()
    form = (b"--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nears\r\n"
            b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" % (BOUNDARY, BOUNDARY))
    tail = b"\r\n--%s--\r\n" % BOUNDARY
    target = "/" + url.split("//")[1].split("/", 1)[1] + "/audio/transcriptions"
    head = (b"POST %s HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer sk-bench\r\n"
            b"content-type: multipart/form-data; boundary=%s\r\ncontent-length: %d\r\n\r\n"
            % (target.encode(), BOUNDARY, len(form) + len(audio) + len(tail)))
    async def one():
        reader, writer = await connect(url)
        start = time.perf_counter()
        writer.write(head + form)
        view = memoryview(audio)
        for at in range(0, len(audio), 1 << 16):
            writer.write(view[at:at + (1 << 16)])
            await writer.drain()
            if mbps:
                ahead = (at + (1 << 16)) / (mbps * 1e6) - (time.perf_counter() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        writer.write(tail)
        await writer.drain()
        status, fields = await read_head(reader)
        await read_body(reader, fields)
        assert " 200 " in status, status
        writer.close()
        return (time.perf_counter() - start) * 1000

    times = []
    for _ in range(runs):
        times += await asyncio.gather(*(one() for _ in range(at_once)))
    print(f"{statistics.median(times):.1f} {min(times):.1f}")


async def speech(url, runs):
    body = b'{"model":"voice","input":"hello","voice":"alloy","response_format":"pcm"}'
    target = "/" + url.split("//")[1].split("/", 1)[1] + "/audio/speech"
    delays = []
    for _ in range(runs):
        reader, writer = await connect(url)
        writer.write(b"POST %s HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer sk-bench\r\n"
                     b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (target.encode(), len(body), body))
        await writer.drain()
        status, fields = await read_head(reader)
        assert " 200 " in status, status
        pending = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                break
            data = await reader.readexactly(size)
            now = time.monotonic()
            await reader.readline()
            pending += data
            # Each piece starts with its send stamp; the gateway may cut or join pieces.
            while len(pending) >= PIECE:
                sent = struct.unpack("<d", pending[:8])[0]
                delays.append((now - sent) * 1000)
                pending = pending[PIECE:]
        writer.close()
    delays.sort()
    print(f"{statistics.median(delays):.3f} {delays[int(len(delays) * 0.99) - 1]:.3f}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "upstream":
        asyncio.run(serve(int(sys.argv[2])))
    elif mode == "upload":
        at_once = int(sys.argv[5]) if len(sys.argv) > 5 else 1
        mbps = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
        asyncio.run(upload(sys.argv[2], sys.argv[3], int(sys.argv[4]), at_once, mbps))
    else:
        asyncio.run(speech(sys.argv[2], int(sys.argv[3])))
