"""Versioned object storage with a watch event log (the double's 'etcd + watch cache')."""
import threading

from util import deepcopy


class WatchEvent:
    __slots__ = ("rv", "rkey", "type", "obj", "prev")

    def __init__(self, rv, rkey, typ, obj, prev):
        self.rv = rv
        self.rkey = rkey
        self.type = typ
        self.obj = obj
        self.prev = prev


class Store:
    def __init__(self, history=5000, start_rv=1000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = start_rv
        self.objs = {}        # rkey -> {(ns, name): obj}; stored objects are never mutated in place
        self.log = []         # WatchEvent, increasing rv
        self.history = history
        self.compacted_rv = start_rv  # watches from an rv below this get 410 Expired
        self.epoch = 0        # bumped to end all open watches

    def _bucket(self, rkey):
        return self.objs.setdefault(rkey, {})

    def get(self, rkey, ns, name):
        with self.lock:
            o = self._bucket(rkey).get((ns or "", name))
            return deepcopy(o) if o is not None else None

    def get_ref(self, rkey, ns, name):
        with self.lock:
            return self._bucket(rkey).get((ns or "", name))

    def items(self, rkey, ns=None):
        """References (do not mutate), sorted by namespace/name, plus the current rv."""
        with self.lock:
            b = self._bucket(rkey)
            keys = sorted(k for k in b if ns is None or k[0] == ns)
            return [b[k] for k in keys], self.rv

    def all_items(self):
        with self.lock:
            out = []
            for rkey, b in self.objs.items():
                for k, o in b.items():
                    out.append((rkey, o))
            return out

    def _emit(self, rkey, typ, obj, prev):
        self.log.append(WatchEvent(self.rv, rkey, typ, obj, prev))
        if len(self.log) > self.history:
            drop = len(self.log) - self.history
            self.compacted_rv = self.log[drop - 1].rv
            del self.log[:drop]
        self.cond.notify_all()

    def put(self, rkey, obj, typ):
        """Store obj (a fresh dict the caller gives up) with a new resourceVersion."""
        with self.lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            md = obj["metadata"]
            k = (md.get("namespace", "") or "", md["name"])
            prev = self._bucket(rkey).get(k)
            self._bucket(rkey)[k] = obj
            self._emit(rkey, typ, obj, prev)
            return obj

    def remove(self, rkey, ns, name):
        with self.lock:
            k = (ns or "", name)
            prev = self._bucket(rkey).pop(k, None)
            if prev is None:
                return None
            self.rv += 1
            gone = deepcopy(prev)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(rkey, "DELETED", gone, prev)
            return gone

    def events_since(self, rv):
        """Events with rv > given rv, or None if that part of the history is gone."""
        with self.lock:
            if rv < self.compacted_rv:
                return None
            lo, hi = 0, len(self.log)
            while lo < hi:
                mid = (lo + hi) // 2
                if self.log[mid].rv <= rv:
                    lo = mid + 1
                else:
                    hi = mid
            return self.log[lo:]

    def compact(self):
        with self.lock:
            self.compacted_rv = self.rv
            self.log = []

    def end_watches(self):
        with self.lock:
            self.epoch += 1
            self.cond.notify_all()

    def mark_seeded(self):
        with self.lock:
            self.compacted_rv = self.rv
            self.log = []
