#!/usr/bin/env python3
"""online_bound.py - how close ANY online governor can come to the offline
optimum on bench_pm's heavy-step trace (docs/PM.md "What the governor cannot
know").  MODELLED energy, the Arm EAS tables of kernel/pm/energy.c.

heavy-step: every 200 ms a request of W ms of work (at capacity 1024, scaled
to the domain), W uniform in 0.8..1.2 of 80 ms (sim_trace.c's work_jitter),
due 100 ms after it arrives.  The offline optimum knows each W and runs it at
W/100 ms of capacity (time-sharing the two hull OPPs around that).  An online
governor learns the distribution at best, never the next W: it must pick a
speed for each unit of work before knowing whether the request goes on, and
must finish the largest W by the deadline.  The best such schedule (PACE,
Lorch and Smith 2001) runs the w-th unit at a speed chosen by the survival
P(W > w): minimising  sum_w P(W > w) e(s_w)  subject to  sum_w 1/s_w <= T,
a fractional knapsack over the hull's segments, solved exactly below.  Its
expected energy divided by the optimum's is a floor for every online
governor on this trace, the thoth governor included.

Usage: python3 bench/pm/online_bound.py
"""

MODELS = {  # (capacity, core + cluster mW) per OPP; cluster-sleep mW
    "hikey-a53": ([(178, 85), (369, 153), (622, 271), (819, 442), (1024, 782)], 0),
    "juno-a57": ([(417, 192), (579, 283), (744, 402), (883, 528), (1023, 680)], 24),
    "juno-a53": ([(235, 59), (302, 76), (368, 100), (406, 123), (447, 150)], 17),
}
T, PERIOD, W_LO, W_HI = 100.0, 200.0, 64.0, 96.0  # ms


def hull(opps, sleep):
    h = []
    for p in [(0, sleep)] + opps:
        while len(h) >= 2:
            (x1, y1), (x2, y2) = h[-2], h[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                h.pop()
            else:
                break
        h.append(p)
    return h


def hull_power(h, c):
    for i in range(1, len(h)):
        if c <= h[i][0]:
            return h[i - 1][1] + (h[i][1] - h[i - 1][1]) * (c - h[i - 1][0]) / (h[i][0] - h[i - 1][0])
    return h[-1][1]


def bounds(opps, sleep, samples=400, bins=800):
    h = hull(opps, sleep)
    scale = opps[-1][0] / 1024.0
    lo, hi = W_LO * scale, W_HI * scale
    ws = [lo + (hi - lo) * (i + 0.5) / samples for i in range(samples)]
    optimum = sum(T * hull_power(h, 1024 * w / T) + (PERIOD - T) * sleep for w in ws) / samples
    # one speed for all work, fast enough for the largest request
    c = 1024 * hi / T
    constant = sum(1024 * w / c * (hull_power(h, c) - sleep) + PERIOD * sleep for w in ws) / samples
    # PACE: start every unit of work at the fastest hull point, then buy
    # slack where it saves the most expected energy per ms
    vert = [v for v in h if v[0] > 0]
    cost = lambda v: (v[1] - sleep) / v[0] * 1024  # mW*ms per ms of work at 1024
    time = lambda v: 1024 / v[0]
    dw = hi / bins
    survival = lambda w: 1.0 if w < lo else max(0.0, (hi - w) / (hi - lo))
    items = []
    for b in range(bins):
        s = survival((b + 0.5) * dw)
        for k in range(len(vert) - 1, 0, -1):
            fast, slow = vert[k], vert[k - 1]
            dt = (time(slow) - time(fast)) * dw
            de = (cost(fast) - cost(slow)) * dw * s
            items.append((de / dt, b, dt, de))
    items.sort(key=lambda x: -x[0])
    slack = T - bins * dw * time(vert[-1])
    saved = [0.0] * bins
    for _, b, dt, de in items:
        if slack <= 0:
            break
        f = min(1.0, slack / dt)
        slack -= f * dt
        saved[b] += f * de
    pace = 0.0
    for w in ws:
        e = PERIOD * sleep
        for b in range(bins):
            if (b + 0.5) * dw < w:
                s = survival((b + 0.5) * dw)
                e += cost(vert[-1]) * dw - (saved[b] / s if s > 0 else 0)
        pace += e
    pace /= samples
    return optimum, constant, pace


if __name__ == "__main__":
    print("heavy-step, MODELLED energy per request (mW*ms); ratios to the offline optimum")
    print("%-10s %10s %22s %26s" % ("model", "optimum", "constant worst-case speed", "best online (PACE, floor)"))
    for name, (opps, sleep) in MODELS.items():
        o, c, p = bounds(opps, sleep)
        print("%-10s %10.0f %21.3fx %25.3fx" % (name, o, c / o, p / o))
