# Measures a server's RSS growth per idle registered IRC connection.
# usage: python3 scripts/idle_rss.py <clients> <port> <server pid>   (loopback only)
import asyncio, os, sys, time, subprocess
N=int(sys.argv[1]); PORT=int(sys.argv[2]); PID=int(sys.argv[3])
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])*1024
async def one(i, conns):
    r,w = await asyncio.open_connection("127.0.0.1", PORT)
    w.write(f"NICK u{i}\r\nUSER u{i} 0 * :u\r\n".encode()); await w.drain()
    while True:
        line = await r.readline()
        if b" 376 " in line or b" 422 " in line: break
    conns.append((r,w))
async def main():
    conns=[]
    before=rss(PID)
    t=time.time()
    sem=asyncio.Semaphore(200)
    async def guarded(i):
        async with sem: await one(i, conns)
    await asyncio.gather(*(guarded(i) for i in range(N)))
    dt=time.time()-t
    await asyncio.sleep(2)
    after=rss(PID)
    print(f"{N} clients registered in {dt:.2f}s; server RSS {before/1e6:.1f} MB -> {after/1e6:.1f} MB; {(after-before)/N:.0f} bytes per idle registered connection")
asyncio.run(main())
