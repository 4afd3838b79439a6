package ledger

// NoticeKind is what a notice reports.
type NoticeKind string

// Notice kinds.
const (
	NoticeUsed80   NoticeKind = "used-80"  // charged + held first reached 80 % of the credited amount
	NoticeUsed100  NoticeKind = "used-100" // … and 100 %: nothing is left to start a job with
	NoticeExpiring NoticeKind = "expiring" // the grant ends within the horizon Notices was given
	NoticeExpired  NoticeKind = "expired"  // the grant has ended
)

// Notice is an event about a grant, for the API and the CLI to show.
type Notice struct {
	Grant string     `json:"grant"`
	Kind  NoticeKind `json:"kind"`
	// Time is when it happened: the entry that crossed the threshold, the
	// call that saw the end coming, or the grant's end.
	Time   int64 `json:"time"`
	Used   int64 `json:"used_s"`   // charged + held, accelerator-seconds, then
	Amount int64 `json:"amount_s"` // the credited amount (Account.Total) then
}

type noticeKey struct {
	grant string
	kind  NoticeKind
}

// Notices returns the notices not emitted yet, by grant ID then in the
// order of the kinds above, and marks them emitted: each is emitted once.
// Use notices reach back to the entry that crossed the threshold, even if
// use has fallen since (a release). Grants ending in (now, now+soon] get an
// expiring notice; grants ended by now get an expired one (and no expiring
// notice if none was emitted before the end).
func (l *Ledger) Notices(now, soon int64) []Notice {
	var out []Notice
	emit := func(n Notice) {
		k := noticeKey{n.Grant, n.Kind}
		if !l.emitted[k] {
			l.emitted[k] = true
			out = append(out, n)
		}
	}
	for _, id := range l.ids {
		a := l.accounts[id]
		for k, kind := range []NoticeKind{NoticeUsed80, NoticeUsed100} {
			if c := a.reached[k]; c.ok {
				emit(Notice{Grant: id, Kind: kind, Time: c.time, Used: c.used, Amount: c.total})
			}
		}
		switch until := a.grant.Until; {
		case until <= now:
			emit(Notice{Grant: id, Kind: NoticeExpired, Time: until, Used: a.used(), Amount: a.total})
		case until-now <= soon:
			emit(Notice{Grant: id, Kind: NoticeExpiring, Time: now, Used: a.used(), Amount: a.total})
		}
	}
	return out
}
