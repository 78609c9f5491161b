#!/usr/bin/env python3
"""Samples the libobs host child of `party_obs compare` (`party_obs obs-process`) from /proc:
CPU per thread group (schedstat, exact), voluntary wake-ups and involuntary switches, thread
counts, RSS and anonymous memory (smaps_rollup), over WINDOW_S seconds starting WAIT_S seconds
after the plugin's sources exist. Run next to the bench (decision 0011):

  python3 tools/bench/proc_threads.py LABEL 10 45 &
  BENCH_CHROMIUM=/nonexistent BENCH_COMPARE_SECONDS=60 target/release/deps/party_obs-<hash> compare
"""
import os, sys, time, re, collections

label, wait_s, window_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])

def find_child():
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\0')
        except OSError:
            continue
        if any(a == b'obs-process' for a in cmd) and any(b'party_obs' in a for a in cmd[:1]):
            return int(pid)
    return None

def group(name):
    if name.startswith('psn-pump') or name.startswith('psn-delivery'): return 'pumps / delivery'
    if name.startswith('psn-playout'): return 'playout'
    if name.startswith('psn-rt'): return 'network (psn-rt)'
    if name.startswith('webrtc-rx'): return 'network (webrtc-rx)'
    if 'audio' in name: return 'OBS audio'
    return 'other'

def snap(pid):
    out = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            name = open(f'/proc/{pid}/task/{tid}/comm').read().strip()
            ns = int(open(f'/proc/{pid}/task/{tid}/schedstat').read().split()[0])
            st = open(f'/proc/{pid}/task/{tid}/status').read()
            vol = int(re.search(r'voluntary_ctxt_switches:\s+(\d+)', st).group(1))
            nonvol = int(re.search(r'nonvoluntary_ctxt_switches:\s+(\d+)', st).group(1))
        except (OSError, AttributeError):
            continue
        out[(tid, name)] = (ns, vol, nonvol)
    return out

def mem(pid):
    st = open(f'/proc/{pid}/status').read()
    rss = int(re.search(r'VmRSS:\s+(\d+)', st).group(1))
    roll = open(f'/proc/{pid}/smaps_rollup').read()
    anon = int(re.search(r'Anonymous:\s+(\d+)', roll).group(1))
    return rss, anon

pid = None
while pid is None:
    pid = find_child(); time.sleep(0.2)
print(f'[{label}] obs-process pid {pid}', flush=True)
# wait until our sources exist (pumps running)
base_mem = None
while True:
    s = snap(pid)
    if any(n.startswith(('psn-pump', 'psn-delivery')) for (_, n) in s):
        break
    base_mem = mem(pid)
    time.sleep(0.1)
time.sleep(wait_s)
a, ta, ma = snap(pid), time.time(), mem(pid)
time.sleep(window_s)
b, tb, mb = snap(pid), time.time(), mem(pid)
dt = tb - ta
cpu = collections.defaultdict(float); wake = collections.defaultdict(float); inv = collections.defaultdict(float)
threads = collections.Counter()
for k, (ns, vol, nv) in b.items():
    g = group(k[1]); threads[g] += 1
    ns0, vol0, nv0 = a.get(k, (0, 0, 0))
    cpu[g] += (ns - ns0) / 1e9; wake[g] += vol - vol0; inv[g] += nv - nv0
print(f'[{label}] window {dt:.1f} s; threads {dict(threads)} (total {sum(threads.values())})')
for g in sorted(cpu):
    print(f'[{label}]   {g:22} cpu {cpu[g]/dt*60:6.2f} s/min  ({cpu[g]/dt*100:5.2f} % of a core)  wake-ups {wake[g]/dt:7.1f}/s  involuntary {inv[g]/dt:6.1f}/s')
plug = [g for g in cpu if g not in ('OBS audio', 'other')]
print(f'[{label}]   plugin total cpu {sum(cpu[g] for g in plug)/dt*60:.2f} s/min, wake-ups {sum(wake[g] for g in plug)/dt:.1f}/s')
if base_mem:
    print(f'[{label}] memory: before sources RSS {base_mem[0]/1024:.1f} MiB anon {base_mem[1]/1024:.1f} MiB; in window RSS {mb[0]/1024:.1f} MiB (+{(mb[0]-base_mem[0])/1024:.1f}) anon {mb[1]/1024:.1f} MiB (+{(mb[1]-base_mem[1])/1024:.1f})')
