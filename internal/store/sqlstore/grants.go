package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/ledger"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/store"
)

// grantsSchema is schema step 4. A grant's row keeps the running sums of
// its ledger entries (total, charged, expired, held, holds), so that an
// operation reads and locks the few grants it touches instead of
// replaying their entries; the entries are all kept too, and CheckLedger
// replays them against the sums. grant_holds holds each running job's
// hold, usage_sums the finished jobs' use summed by user, project, site,
// class, programme and month (see usage.Part).
var grantsSchema = []string{
	`CREATE TABLE programmes (name TEXT PRIMARY KEY, data TEXT NOT NULL)`,
	`CREATE TABLE calls (id TEXT PRIMARY KEY, data TEXT NOT NULL)`,
	`CREATE TABLE proposals (id TEXT PRIMARY KEY, call_id TEXT NOT NULL, project TEXT NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL)`,
	`CREATE INDEX proposals_call ON proposals (call_id, id)`,
	`CREATE TABLE grants (id TEXT PRIMARY KEY, project TEXT NOT NULL, programme TEXT NOT NULL,
		valid_from BIGINT NOT NULL, valid_until BIGINT NOT NULL, parent TEXT NOT NULL,
		total BIGINT NOT NULL, charged BIGINT NOT NULL, expired BIGINT NOT NULL, held BIGINT NOT NULL, holds BIGINT NOT NULL,
		data TEXT NOT NULL)`,
	`CREATE INDEX grants_project ON grants (project, id)`,
	`CREATE TABLE ledger (seq BIGINT PRIMARY KEY, grant_id TEXT NOT NULL, time BIGINT NOT NULL, kind TEXT NOT NULL,
		amount BIGINT NOT NULL, job TEXT NOT NULL, other TEXT NOT NULL, actor TEXT NOT NULL, note TEXT NOT NULL,
		accelerators BIGINT NOT NULL, factor DOUBLE PRECISION NOT NULL)`,
	`CREATE INDEX ledger_grant ON ledger (grant_id, seq)`,
	`CREATE TABLE grant_holds (job TEXT PRIMARY KEY, grant_id TEXT NOT NULL, amount BIGINT NOT NULL,
		accelerators BIGINT NOT NULL, factor DOUBLE PRECISION NOT NULL, site TEXT NOT NULL, model TEXT NOT NULL, programme TEXT NOT NULL)`,
	`CREATE TABLE grant_notices (id {{id}}, grant_id TEXT NOT NULL, kind TEXT NOT NULL, project TEXT NOT NULL,
		time BIGINT NOT NULL, used BIGINT NOT NULL, amount BIGINT NOT NULL)`,
	`CREATE UNIQUE INDEX grant_notices_kind ON grant_notices (grant_id, kind)`,
	`CREATE TABLE usage_sums (user_name TEXT NOT NULL, project TEXT NOT NULL, site TEXT NOT NULL, model TEXT NOT NULL,
		programme TEXT NOT NULL, month TEXT NOT NULL, jobs BIGINT NOT NULL, acc_s BIGINT NOT NULL, cpu_s BIGINT NOT NULL,
		wall_s BIGINT NOT NULL, measured_kwh DOUBLE PRECISION NOT NULL, measured_acc_s BIGINT NOT NULL,
		PRIMARY KEY (user_name, project, site, model, programme, month))`,
	`CREATE INDEX usage_sums_month ON usage_sums (month)`,
	`CREATE TABLE settings (name TEXT PRIMARY KEY, data TEXT NOT NULL)`,
	`INSERT INTO counters (name, value) VALUES ('ledger', 0), ('proposal', 0), ('call', 0)`,
}

// checkID checks the ID or name of a programme, call, proposal or grant.
func checkID(what, id string) error {
	switch {
	case id == "":
		return invalidf("%s: the name is empty; give one", what)
	case len(id) > 128:
		return invalidf("%s: the name is %d bytes long; at most 128", what, len(id))
	case strings.ContainsAny(id, " \t\r\n,/"):
		return invalidf("%s %q: the name holds a space, comma, slash or line break; use letters, digits and - _ . :", what, id)
	}
	return nil
}

// schedBalance is an unlimited balance for project p.
func schedBalance(p string) sched.Balance { return sched.Balance{Project: p, Remaining: Unlimited} }

// invalidf is a store.ErrInvalid with a message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, args...))
}

// ledgerErr maps the ledger's sentinels onto the store's, keeping the
// message: unknown grant → ErrNotFound, invalid → ErrInvalid, exists →
// ErrConflict; ErrInsufficient stays itself.
func ledgerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrUnknown):
		return fmt.Errorf("%w (%w)", err, store.ErrNotFound)
	case errors.Is(err, ledger.ErrInvalid):
		return fmt.Errorf("%w (%w)", err, store.ErrInvalid)
	case errors.Is(err, ledger.ErrExists):
		return fmt.Errorf("%w (%w)", err, store.ErrConflict)
	}
	return err
}

// --- programmes, calls, settings ---

// PutProgramme implements store.Grants.
func (s *Store) PutProgramme(ctx context.Context, p store.Programme) error {
	if err := checkID("programme", p.Name); err != nil {
		return err
	}
	return s.putJSON(ctx, "programmes", p.Name, p)
}

// Programmes implements store.Grants.
func (s *Store) Programmes(ctx context.Context) ([]store.Programme, error) {
	return listJSON[store.Programme](ctx, s, "programmes")
}

// PutAccounting implements store.Grants.
func (s *Store) PutAccounting(ctx context.Context, a store.Accounting) error {
	if err := a.Check(); err != nil {
		return err
	}
	return s.putJSON(ctx, "settings", "accounting", a)
}

// Accounting implements store.Grants.
func (s *Store) Accounting(ctx context.Context) (store.Accounting, error) {
	return s.accounting(ctx, s.reader())
}

func (s *Store) accounting(ctx context.Context, o on) (store.Accounting, error) {
	var a store.Accounting
	var data string
	err := o.queryRow(ctx, `SELECT data FROM settings WHERE name = 'accounting'`).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return a, nil
	}
	if err == nil {
		err = json.Unmarshal([]byte(data), &a)
	}
	if err != nil {
		return a, fmt.Errorf("read accounting settings: %w", err)
	}
	return a, nil
}

// PutCall implements store.Grants. A call without an ID gets the next
// number.
func (s *Store) PutCall(ctx context.Context, c store.Call) (store.Call, error) {
	if err := checkCall(&c); err != nil {
		return c, err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var prog string
		err := s.in(tx).queryRow(ctx, `SELECT name FROM programmes WHERE name = ?`, c.Programme).Scan(&prog)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("call %s: programme %q: %w; create the programme first", c.Name, c.Programme, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if c.ID == "" {
			n, err := s.next(ctx, tx, "call", 1)
			if err != nil {
				return err
			}
			c.ID = fmt.Sprintf("call-%d", n)
			c.Granted = 0
		} else {
			old, err := s.readJSON(ctx, s.in(tx), `SELECT data FROM calls WHERE id = ?`+s.d.forUpdate, c.ID, &store.Call{})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				prev := old.(*store.Call)
				c.Granted = prev.Granted
				if prev.Programme != c.Programme {
					return invalidf("call %s belongs to programme %s; a call cannot move to another programme", c.ID, prev.Programme)
				}
				if c.Total < c.Granted {
					return invalidf("call %s: total %d is less than the %d already granted", c.ID, c.Total, c.Granted)
				}
			}
		}
		return s.upsertJSON(ctx, tx, "calls", "id", c.ID, c)
	})
	return c, err
}

func checkCall(c *store.Call) error {
	var errs []string
	if c.ID != "" {
		if err := checkID("call", c.ID); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, "name is empty; give the call a name")
	}
	if c.Programme == "" {
		errs = append(errs, "programme is empty; name the funding programme")
	}
	if c.Total <= 0 {
		errs = append(errs, fmt.Sprintf("total_s is %d; give the accelerator-seconds the call offers, more than 0", c.Total))
	}
	if c.Closes <= c.Opens {
		errs = append(errs, fmt.Sprintf("closes %d is not after opens %d; give a period that ends after it starts", c.Closes, c.Opens))
	}
	if len(c.Offers) == 0 {
		errs = append(errs, "offers is empty; list the accelerator classes (and sites) the call offers")
	}
	for i, o := range c.Offers {
		if o.Model == "" {
			errs = append(errs, fmt.Sprintf("offers[%d].model is empty; name an accelerator class", i))
		}
	}
	if len(errs) > 0 {
		return invalidf("call: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Call implements store.Grants.
func (s *Store) Call(ctx context.Context, id string) (store.Call, error) {
	v, err := s.readJSON(ctx, s.reader(), `SELECT data FROM calls WHERE id = ?`, id, &store.Call{})
	if err != nil {
		return store.Call{}, fmt.Errorf("call %s: %w", id, err)
	}
	return *v.(*store.Call), nil
}

// Calls implements store.Grants.
func (s *Store) Calls(ctx context.Context) ([]store.Call, error) {
	return listRows[store.Call](ctx, s.reader(), `SELECT data FROM calls ORDER BY id`)
}

// readJSON reads one JSON data column into v; ErrNotFound when no row.
func (s *Store) readJSON(ctx context.Context, o on, query string, key any, v any) (any, error) {
	var data string
	err := o.queryRow(ctx, query, key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(data), v); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return v, nil
}

// upsertJSON writes a row of a (key, data) table.
func (s *Store) upsertJSON(ctx context.Context, tx *sql.Tx, table, key, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.in(tx).exec(ctx, `INSERT INTO `+table+` (`+key+`, data) VALUES (?, ?) ON CONFLICT (`+key+`) DO UPDATE SET data = excluded.data`, id, string(data))
	return err
}

// listRows decodes the single JSON column of every row.
func listRows[T any](ctx context.Context, o on, query string, args ...any) ([]T, error) {
	rows, err := o.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var data string
		var v T
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// --- proposals ---

// SubmitProposal implements store.Grants.
func (s *Store) SubmitProposal(ctx context.Context, p store.Proposal, now int64) (store.Proposal, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		o := s.in(tx)
		v, err := s.readJSON(ctx, o, `SELECT data FROM calls WHERE id = ?`+s.d.forUpdate, p.Call, &store.Call{})
		if err != nil {
			return fmt.Errorf("proposal to call %q: %w", p.Call, err)
		}
		c := v.(*store.Call)
		if !c.Open(now) {
			return invalidf("call %s (%s) is closed: it takes proposals from %s to %s; submit to an open call",
				c.ID, c.Name, time.Unix(c.Opens, 0).UTC().Format(time.DateTime), time.Unix(c.Closes, 0).UTC().Format(time.DateTime))
		}
		if err := checkProposal(&p, c); err != nil {
			return err
		}
		var proj string
		if err := o.queryRow(ctx, `SELECT name FROM projects WHERE name = ?`, p.Project).Scan(&proj); err != nil {
			return fmt.Errorf("proposal: project %q: %w; create the project first", p.Project, store.ErrNotFound)
		}
		if p.ID != "" {
			old, err := s.readJSON(ctx, o, `SELECT data FROM proposals WHERE id = ?`+s.d.forUpdate, p.ID, &store.Proposal{})
			if err != nil {
				return fmt.Errorf("proposal %s: %w", p.ID, err)
			}
			if prev := old.(*store.Proposal); prev.State != store.ProposalReturned || prev.Call != p.Call || prev.Project != p.Project {
				return fmt.Errorf("proposal %s is %s (call %s, project %s): only a returned proposal may be submitted again, to its call, for its project: %w",
					p.ID, prev.State, prev.Call, prev.Project, store.ErrConflict)
			}
		} else {
			n, err := s.next(ctx, tx, "proposal", 1)
			if err != nil {
				return err
			}
			p.ID = fmt.Sprintf("prop-%d", n)
		}
		// One live proposal per project, class and site whose periods
		// overlap, in one call: amend the one there.
		others, err := listRows[store.Proposal](ctx, o, `SELECT data FROM proposals WHERE call_id = ? AND project = ? AND state IN ('submitted', 'accepted') AND id <> ?`,
			p.Call, p.Project, p.ID)
		if err != nil {
			return err
		}
		for _, q := range others {
			if q.Model == p.Model && q.Site == p.Site && q.From < p.Until && p.From < q.Until {
				return invalidf("proposal overlaps proposal %s (%s) of project %s for %s in call %s, [%d, %d): one proposal per class, site and period; ask for more in that one, or choose a period that does not overlap",
					q.ID, q.State, p.Project, p.Model, p.Call, q.From, q.Until)
			}
		}
		p.State, p.Submitted, p.Granted, p.Grant, p.Decider, p.Decided = store.ProposalSubmitted, now, 0, "", "", 0
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = o.exec(ctx, `INSERT INTO proposals (id, call_id, project, state, data) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, data = excluded.data`, p.ID, p.Call, p.Project, p.State, string(data))
		return err
	})
	return p, err
}

func checkProposal(p *store.Proposal, c *store.Call) error {
	var errs []string
	if p.Project == "" {
		errs = append(errs, "project is empty; name the project asking")
	}
	if strings.TrimSpace(p.Title) == "" {
		errs = append(errs, "title is empty; give the proposal a title")
	}
	if p.Amount <= 0 {
		errs = append(errs, fmt.Sprintf("amount_s is %d; ask for a positive number of accelerator-seconds", p.Amount))
	}
	if p.Amount > c.Total-c.Granted {
		errs = append(errs, fmt.Sprintf("amount_s is %d but call %s has %d accelerator-seconds left to give", p.Amount, c.ID, c.Total-c.Granted))
	}
	if p.Until <= p.From {
		errs = append(errs, fmt.Sprintf("until %d is not after from %d; give a period that ends after it starts", p.Until, p.From))
	}
	if !slices.ContainsFunc(c.Offers, func(o store.CallOffer) bool {
		return o.Model == p.Model && (o.Site == "" || o.Site == p.Site)
	}) {
		var offers []string
		for _, o := range c.Offers {
			offers = append(offers, o.Model+"@"+cmpOr(o.Site, "any site"))
		}
		errs = append(errs, fmt.Sprintf("call %s does not offer %s at %s; it offers %s", c.ID, p.Model, cmpOr(p.Site, "any site"), strings.Join(offers, ", ")))
	}
	if len(errs) > 0 {
		return invalidf("proposal: %s", strings.Join(errs, "; "))
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Proposal implements store.Grants.
func (s *Store) Proposal(ctx context.Context, id string) (store.Proposal, error) {
	v, err := s.readJSON(ctx, s.reader(), `SELECT data FROM proposals WHERE id = ?`, id, &store.Proposal{})
	if err != nil {
		return store.Proposal{}, fmt.Errorf("proposal %s: %w", id, err)
	}
	return *v.(*store.Proposal), nil
}

// Proposals implements store.Grants.
func (s *Store) Proposals(ctx context.Context, f store.ProposalFilter) ([]store.Proposal, error) {
	var where []string
	var args []any
	if f.Call != "" {
		where, args = append(where, "call_id = ?"), append(args, f.Call)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	if f.Projects != nil {
		if len(f.Projects) == 0 {
			return []store.Proposal{}, nil
		}
		where = append(where, "project IN ("+placeholders(len(f.Projects))+")")
		for _, p := range f.Projects {
			args = append(args, p)
		}
	}
	q := `SELECT data FROM proposals`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return listRows[store.Proposal](ctx, s.reader(), q+" ORDER BY id", args...)
}

// DecideProposal implements store.Grants.
func (s *Store) DecideProposal(ctx context.Context, id string, d store.Decision, now int64) (store.Proposal, error) {
	var p store.Proposal
	err := s.tx(ctx, func(tx *sql.Tx) error {
		o := s.in(tx)
		v, err := s.readJSON(ctx, o, `SELECT data FROM proposals WHERE id = ?`+s.d.forUpdate, id, &store.Proposal{})
		if err != nil {
			return fmt.Errorf("proposal %s: %w", id, err)
		}
		p = *v.(*store.Proposal)
		if p.State != store.ProposalSubmitted {
			return fmt.Errorf("proposal %s is %s: only a submitted proposal can be decided: %w", id, p.State, store.ErrConflict)
		}
		cv, err := s.readJSON(ctx, o, `SELECT data FROM calls WHERE id = ?`+s.d.forUpdate, p.Call, &store.Call{})
		if err != nil {
			return fmt.Errorf("call %s of proposal %s: %w", p.Call, id, err)
		}
		c := cv.(*store.Call)
		p.Comment, p.Decider, p.Decided = d.Comment, d.Actor, now
		switch d.State {
		case store.ProposalRejected, store.ProposalReturned:
			if d.State == store.ProposalReturned && strings.TrimSpace(d.Comment) == "" {
				return invalidf("returning proposal %s: say what to change in the comment", id)
			}
			p.State = d.State
		case store.ProposalAccepted:
			amount := d.Amount
			if amount == 0 {
				amount = p.Amount
			}
			switch {
			case amount < 0:
				return invalidf("accepting proposal %s with %d accelerator-seconds: give a positive amount, at most the %d asked", id, amount, p.Amount)
			case amount > p.Amount:
				return invalidf("accepting proposal %s with %d accelerator-seconds, more than the %d asked: give at most what was asked", id, amount, p.Amount)
			case amount > c.Total-c.Granted:
				return fmt.Errorf("accepting proposal %s with %d accelerator-seconds: call %s has %d left to give: %w",
					id, amount, c.ID, c.Total-c.Granted, ledger.ErrInsufficient)
			}
			gid := cmpOr(d.GrantID, p.ID)
			g := store.GrantInfo{Grant: model.Grant{ID: gid, Project: p.Project, Model: p.Model, Site: p.Site, Amount: amount,
				From: p.From, Until: p.Until, Public: c.Public}, Programme: c.Programme, Call: c.ID, Proposal: p.ID}
			if _, err := s.openGrant(ctx, tx, g, d.Actor, fmt.Sprintf("proposal %s to call %s", p.ID, c.ID), now); err != nil {
				return err
			}
			c.Granted += amount
			if err := s.upsertJSON(ctx, tx, "calls", "id", c.ID, c); err != nil {
				return err
			}
			p.State, p.Granted, p.Grant = store.ProposalAccepted, amount, gid
		default:
			return invalidf("decision %q on proposal %s: say accepted, rejected or returned", d.State, id)
		}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = o.exec(ctx, `UPDATE proposals SET state = ?, data = ? WHERE id = ?`, p.State, string(data), p.ID)
		return err
	})
	return p, err
}

// --- grants ---

const grantCols = `id, parent, total, charged, expired, held, holds, data`

// grantRow is a grant's row.
type grantRow struct {
	info  store.GrantInfo
	state ledger.State
}

func scanGrant(sc scanner) (grantRow, error) {
	var g grantRow
	var id, data string
	st := &g.state
	if err := sc.Scan(&id, &st.Parent, &st.Total, &st.Charged, &st.Expired, &st.Held, &st.Holds, &data); err != nil {
		return g, err
	}
	if err := json.Unmarshal([]byte(data), &g.info); err != nil {
		return g, fmt.Errorf("decode grant %s: %w", id, err)
	}
	st.Grant = g.info.Grant
	return g, nil
}

func (g *grantRow) account() store.GrantAccount {
	st := g.state
	bal := st.Total - st.Charged - st.Expired
	return store.GrantAccount{GrantInfo: g.info, Parent: st.Parent, Total: st.Total, Charged: st.Charged, Expired: st.Expired,
		Held: st.Held, Balance: bal, Available: bal - st.Held, Holds: st.Holds}
}

func queryGrants(ctx context.Context, o on, where string, args ...any) ([]grantRow, error) {
	out, err := collect(ctx, o, scanGrant, `SELECT `+grantCols+` FROM grants `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read grants: %w", err)
	}
	return out, nil
}

// book is one transaction's ledger: the grant rows it read (locked), a
// ledger restored from them, and what it must write back.
type book struct {
	s     *Store
	tx    *sql.Tx
	l     *ledger.Ledger
	rows  map[string]*grantRow
	fresh map[string]store.GrantInfo // grants opened in this transaction
	// site, model and programme of the jobs held in this transaction
	held map[string][3]string
}

// openBook locks the grants that where selects, in ID order, and restores
// a ledger over them and the holds of jobs.
func (s *Store) openBook(ctx context.Context, tx *sql.Tx, where string, args []any, jobs []string) (*book, error) {
	o := s.in(tx)
	projects, err := listRows[model.Project](ctx, o, `SELECT data FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read projects: %w", err)
	}
	rows, err := queryGrants(ctx, o, where+` ORDER BY id`+s.d.forUpdate, args...)
	if err != nil {
		return nil, err
	}
	b := &book{s: s, tx: tx, rows: map[string]*grantRow{}, fresh: map[string]store.GrantInfo{}, held: map[string][3]string{}}
	states := make([]ledger.State, len(rows))
	for i := range rows {
		b.rows[rows[i].info.ID] = &rows[i]
		states[i] = rows[i].state
	}
	var holds []ledger.OpenHold
	if len(jobs) > 0 {
		args := make([]any, len(jobs))
		for i, j := range jobs {
			args[i] = j
		}
		r, err := o.query(ctx, `SELECT job, grant_id, amount, accelerators, factor FROM grant_holds WHERE job IN (`+placeholders(len(jobs))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read holds: %w", err)
		}
		defer r.Close()
		for r.Next() {
			var h ledger.OpenHold
			if err := r.Scan(&h.Job, &h.Grant, &h.Amount, &h.Accelerators, &h.Factor); err != nil {
				return nil, err
			}
			holds = append(holds, h)
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
	}
	if b.l, err = ledger.Restore(projects, states, holds, 0); err != nil {
		return nil, fmt.Errorf("restore the ledger: %w", err)
	}
	return b, nil
}

// write stores what the ledger's operations returned: entries with the
// ledger's next sequence numbers, the touched grants' sums, new grants,
// holds taken and ended, and the notices use has crossed into.
func (b *book) write(ctx context.Context, entries []ledger.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s, o := b.s, b.s.in(b.tx)
	first, err := s.next(ctx, b.tx, "ledger", len(entries))
	if err != nil {
		return err
	}
	var touched []string
	for i := range entries {
		entries[i].Seq = first + int64(i)
		if !slices.Contains(touched, entries[i].Grant) {
			touched = append(touched, entries[i].Grant)
		}
	}
	err = insertRows(ctx, s, b.tx, `INSERT INTO ledger (seq, grant_id, time, kind, amount, job, other, actor, note, accelerators, factor) VALUES `, 11, entries,
		func(e ledger.Entry) []any {
			return []any{e.Seq, e.Grant, e.Time, string(e.Kind), e.Amount, e.Job, e.Other, e.Actor, e.Note, e.Accelerators, e.Factor}
		})
	if err != nil {
		return fmt.Errorf("write ledger entries: %w", err)
	}
	for _, e := range entries {
		switch e.Kind {
		case ledger.KindHold:
			w := b.held[e.Job]
			if _, err := o.exec(ctx, `INSERT INTO grant_holds (job, grant_id, amount, accelerators, factor, site, model, programme) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				e.Job, e.Grant, e.Amount, e.Accelerators, e.Factor, w[0], w[1], w[2]); err != nil {
				return fmt.Errorf("write the hold of job %s: %w", e.Job, err)
			}
		case ledger.KindRelease:
			if _, err := o.exec(ctx, `DELETE FROM grant_holds WHERE job = ?`, e.Job); err != nil {
				return fmt.Errorf("end the hold of job %s: %w", e.Job, err)
			}
		}
	}
	slices.Sort(touched)
	for _, id := range touched {
		a, ok := b.l.Account(id)
		if !ok {
			return fmt.Errorf("grant %s: not in the ledger", id)
		}
		if info, ok := b.fresh[id]; ok {
			data, err := json.Marshal(info)
			if err != nil {
				return err
			}
			_, err = o.exec(ctx, `INSERT INTO grants (id, project, programme, valid_from, valid_until, parent, total, charged, expired, held, holds, data)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, info.Project, info.Programme, info.From, info.Until, a.Parent,
				a.Total, a.Charged, a.Expired, a.Held, a.Holds, string(data))
			if unique(err) {
				return fmt.Errorf("grant %s exists; choose another ID: %w", id, store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("write grant %s: %w", id, err)
			}
			b.rows[id] = &grantRow{info: info}
		} else if _, err := o.exec(ctx, `UPDATE grants SET total = ?, charged = ?, expired = ?, held = ?, holds = ? WHERE id = ?`,
			a.Total, a.Charged, a.Expired, a.Held, a.Holds, id); err != nil {
			return fmt.Errorf("write grant %s: %w", id, err)
		}
		used := a.Charged + a.Held
		u80, u100 := a.Crossed()
		for _, n := range []struct {
			ok   bool
			kind ledger.NoticeKind
		}{{u80, ledger.NoticeUsed80}, {u100, ledger.NoticeUsed100}} {
			if !n.ok {
				continue
			}
			if _, err := o.exec(ctx, `INSERT INTO grant_notices (grant_id, kind, project, time, used, amount) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (grant_id, kind) DO NOTHING`, id, string(n.kind), a.Grant.Project, entries[len(entries)-1].Time, used, a.Total); err != nil {
				return fmt.Errorf("write a notice of grant %s: %w", id, err)
			}
		}
	}
	return nil
}

// grantOp runs one ledger operation over the grants named, in its own
// transaction, and returns their accounts afterwards.
func (s *Store) grantOp(ctx context.Context, ids []string, op func(b *book) ([]ledger.Entry, error)) ([]store.GrantAccount, error) {
	var out []store.GrantAccount
	err := s.tx(ctx, func(tx *sql.Tx) error {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		b, err := s.openBook(ctx, tx, `WHERE id IN (`+placeholders(len(ids))+`)`, args, nil)
		if err != nil {
			return err
		}
		entries, err := op(b)
		if err != nil {
			return ledgerErr(err)
		}
		if err := b.write(ctx, entries); err != nil {
			return err
		}
		out = out[:0]
		for _, id := range ids {
			g, err := scanGrant(s.in(tx).queryRow(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("grant %s: %w", id, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			out = append(out, g.account())
		}
		return nil
	})
	return out, err
}

// openGrant opens a root grant in tx: no root grant of the same project,
// programme, class and site may overlap its period (top it up instead).
func (s *Store) openGrant(ctx context.Context, tx *sql.Tx, g store.GrantInfo, actor, note string, now int64) (store.GrantAccount, error) {
	if err := g.Validate(); err != nil {
		return store.GrantAccount{}, invalidf("%v", err)
	}
	if g.Amount <= 0 {
		return store.GrantAccount{}, invalidf("grant %s: amount_s is %d; give a positive number of accelerator-seconds", g.ID, g.Amount)
	}
	same, err := queryGrants(ctx, s.in(tx), `WHERE project = ? AND programme = ? AND parent = '' AND valid_from < ? AND valid_until > ?`,
		g.Project, g.Programme, g.Until, g.From)
	if err != nil {
		return store.GrantAccount{}, err
	}
	for _, o := range same {
		if o.info.Model == g.Model && o.info.Site == g.Site {
			return store.GrantAccount{}, invalidf("grant %s overlaps grant %s of project %s (%s at %s, programme %q, [%d, %d)): top that one up instead, or give a period that does not overlap",
				g.ID, o.info.ID, g.Project, cmpOr(g.Model, "any class"), cmpOr(g.Site, "any site"), g.Programme, o.info.From, o.info.Until)
		}
	}
	b, err := s.openBook(ctx, tx, `WHERE 1 = 0`, nil, nil)
	if err != nil {
		return store.GrantAccount{}, err
	}
	entries, err := b.l.Open(g.Grant, actor, note, now)
	if err != nil {
		return store.GrantAccount{}, ledgerErr(err)
	}
	b.fresh[g.ID] = g
	if err := b.write(ctx, entries); err != nil {
		return store.GrantAccount{}, err
	}
	a, _ := b.l.Account(g.ID)
	return accountOf(g, a), nil
}

func accountOf(g store.GrantInfo, a ledger.Account) store.GrantAccount {
	return store.GrantAccount{GrantInfo: g, Parent: a.Parent, Total: a.Total, Charged: a.Charged, Expired: a.Expired,
		Held: a.Held, Balance: a.Balance, Available: a.Available, Holds: a.Holds}
}

// OpenGrant implements store.Grants.
func (s *Store) OpenGrant(ctx context.Context, g store.GrantInfo, actor, note string, now int64) (store.GrantAccount, error) {
	var out store.GrantAccount
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.openGrant(ctx, tx, g, actor, note, now)
		return err
	})
	return out, err
}

// SplitGrant implements store.Grants.
func (s *Store) SplitGrant(ctx context.Context, parent string, child store.GrantInfo, actor, note string, now int64) (store.GrantAccount, error) {
	var out store.GrantAccount
	_, err := s.grantOp(ctx, []string{parent}, func(b *book) ([]ledger.Entry, error) {
		p := b.rows[parent]
		if p == nil {
			return nil, fmt.Errorf("grant %s: %w", parent, ledger.ErrUnknown)
		}
		child.Programme, child.Call, child.Proposal, child.Public = p.info.Programme, p.info.Call, p.info.Proposal, p.info.Public
		if child.Amount < 0 {
			return nil, fmt.Errorf("sub-grant %s: %w: amount_s is %d; a sub-grant needs a positive amount", child.ID, ledger.ErrInvalid, child.Amount)
		}
		entries, err := b.l.Split(parent, child.Grant, actor, note, now)
		if err != nil {
			return nil, err
		}
		b.fresh[child.ID] = child
		a, _ := b.l.Account(child.ID)
		out = accountOf(child, a)
		return entries, nil
	})
	return out, err
}

// TopupGrant implements store.Grants.
func (s *Store) TopupGrant(ctx context.Context, id string, amount int64, actor, note string, now int64) (store.GrantAccount, error) {
	out, err := s.grantOp(ctx, []string{id}, func(b *book) ([]ledger.Entry, error) {
		return b.l.Topup(id, amount, actor, note, now)
	})
	if err != nil {
		return store.GrantAccount{}, err
	}
	return out[0], nil
}

// TransferGrant implements store.Grants.
func (s *Store) TransferGrant(ctx context.Context, from, to string, amount int64, actor, note string, now int64) ([]store.GrantAccount, error) {
	return s.grantOp(ctx, []string{from, to}, func(b *book) ([]ledger.Entry, error) {
		return b.l.Transfer(from, to, amount, actor, note, now)
	})
}

// AdjustGrant implements store.Grants.
func (s *Store) AdjustGrant(ctx context.Context, id string, amount int64, actor, note string, now int64) (store.GrantAccount, error) {
	out, err := s.grantOp(ctx, []string{id}, func(b *book) ([]ledger.Entry, error) {
		return b.l.Adjust(id, amount, actor, note, now)
	})
	if err != nil {
		return store.GrantAccount{}, err
	}
	return out[0], nil
}

// ExpireGrants implements store.Grants.
func (s *Store) ExpireGrants(ctx context.Context, now, soon int64) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		b, err := s.openBook(ctx, tx, `WHERE valid_until <= ? AND total - charged - expired - held > 0`, []any{now}, nil)
		if err != nil {
			return err
		}
		if out, err = b.l.Expire(now); err != nil {
			return ledgerErr(err)
		}
		if err := b.write(ctx, out); err != nil {
			return err
		}
		o := s.in(tx)
		if _, err := o.exec(ctx, `INSERT INTO grant_notices (grant_id, kind, project, time, used, amount)
			SELECT id, 'expired', project, valid_until, charged + held, total FROM grants WHERE valid_until <= ?
			ON CONFLICT (grant_id, kind) DO NOTHING`, now); err != nil {
			return fmt.Errorf("write expiry notices: %w", err)
		}
		if _, err := o.exec(ctx, `INSERT INTO grant_notices (grant_id, kind, project, time, used, amount)
			SELECT id, 'expiring', project, ?, charged + held, total FROM grants WHERE valid_until > ? AND valid_until <= ?
			ON CONFLICT (grant_id, kind) DO NOTHING`, now, now, now+soon); err != nil {
			return fmt.Errorf("write expiry notices: %w", err)
		}
		return nil
	})
	return out, err
}

// Grant implements store.Grants.
func (s *Store) Grant(ctx context.Context, id string) (store.GrantAccount, error) {
	g, err := scanGrant(s.reader().queryRow(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.GrantAccount{}, fmt.Errorf("grant %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.GrantAccount{}, fmt.Errorf("read grant %s: %w", id, err)
	}
	return g.account(), nil
}

// Grants implements store.Grants.
func (s *Store) Grants(ctx context.Context, f store.GrantFilter) ([]store.GrantAccount, error) {
	var where []string
	var args []any
	if f.Projects != nil {
		if len(f.Projects) == 0 {
			return []store.GrantAccount{}, nil
		}
		where = append(where, "project IN ("+placeholders(len(f.Projects))+")")
		for _, p := range f.Projects {
			args = append(args, p)
		}
	}
	if f.Programme != "" {
		where, args = append(where, "programme = ?"), append(args, f.Programme)
	}
	if f.ValidAt != 0 {
		where, args = append(where, "valid_from <= ? AND valid_until > ?"), append(args, f.ValidAt, f.ValidAt)
	}
	q := ""
	if len(where) > 0 {
		q = "WHERE " + strings.Join(where, " AND ")
	}
	rows, err := queryGrants(ctx, s.reader(), q+" ORDER BY id", args...)
	if err != nil {
		return nil, err
	}
	out := make([]store.GrantAccount, len(rows))
	for i := range rows {
		out[i] = rows[i].account()
	}
	return out, nil
}

// LedgerEntries implements store.Grants.
func (s *Store) LedgerEntries(ctx context.Context, grant string, after int64, n int) ([]ledger.Entry, error) {
	q := `SELECT seq, grant_id, time, kind, amount, job, other, actor, note, accelerators, factor FROM ledger WHERE seq > ?`
	args := []any{after}
	if grant != "" {
		q += ` AND grant_id = ?`
		args = append(args, grant)
	}
	rows, err := s.reader().query(ctx, q+` ORDER BY seq`+limit(n), args...)
	if err != nil {
		return nil, fmt.Errorf("read ledger entries: %w", err)
	}
	defer rows.Close()
	out := []ledger.Entry{}
	for rows.Next() {
		var e ledger.Entry
		var kind string
		if err := rows.Scan(&e.Seq, &e.Grant, &e.Time, &kind, &e.Amount, &e.Job, &e.Other, &e.Actor, &e.Note, &e.Accelerators, &e.Factor); err != nil {
			return nil, err
		}
		e.Kind = ledger.Kind(kind)
		out = append(out, e)
	}
	return out, rows.Err()
}

// GrantNotices implements store.Grants.
func (s *Store) GrantNotices(ctx context.Context, f store.NoticeFilter) ([]store.GrantNotice, error) {
	q := `SELECT id, grant_id, kind, project, time, used, amount FROM grant_notices WHERE id > ?`
	args := []any{f.After}
	if f.Grant != "" {
		q, args = q+` AND grant_id = ?`, append(args, f.Grant)
	}
	if f.Projects != nil {
		if len(f.Projects) == 0 {
			return []store.GrantNotice{}, nil
		}
		q += ` AND project IN (` + placeholders(len(f.Projects)) + `)`
		for _, p := range f.Projects {
			args = append(args, p)
		}
	}
	rows, err := s.reader().query(ctx, q+` ORDER BY id`+limit(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("read grant notices: %w", err)
	}
	defer rows.Close()
	out := []store.GrantNotice{}
	for rows.Next() {
		var n store.GrantNotice
		var kind string
		if err := rows.Scan(&n.ID, &n.Grant, &kind, &n.Project, &n.Time, &n.Used, &n.Amount); err != nil {
			return nil, err
		}
		n.Kind = ledger.NoticeKind(kind)
		out = append(out, n)
	}
	return out, rows.Err()
}

// grantedProjects are the projects that own a grant, of any period.
func grantedProjects(ctx context.Context, o on) (map[string]bool, error) {
	rows, err := o.query(ctx, `SELECT DISTINCT project FROM grants`)
	if err != nil {
		return nil, fmt.Errorf("read granted projects: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out[p] = true
	}
	return out, rows.Err()
}

// Unlimited is the balance GrantFeed gives a project that needs no grant.
const Unlimited = math.MaxInt64 / 4

// GrantFeed implements store.Grants.
func (s *Store) GrantFeed(ctx context.Context, now int64) (store.GrantFeed, error) {
	var f store.GrantFeed
	o := s.reader()
	acct, err := s.accounting(ctx, o)
	if err != nil {
		return f, err
	}
	granted, err := grantedProjects(ctx, o)
	if err != nil {
		return f, err
	}
	if len(granted) == 0 && !acct.RequireGrant {
		return f, nil
	}
	projects, err := listRows[model.Project](ctx, o, `SELECT data FROM projects ORDER BY name`)
	if err != nil {
		return f, fmt.Errorf("read projects: %w", err)
	}
	rows, err := queryGrants(ctx, o, `WHERE valid_from <= ? AND valid_until > ? ORDER BY id`, now, now)
	if err != nil {
		return f, err
	}
	states := make([]ledger.State, len(rows))
	for i := range rows {
		states[i] = rows[i].state
	}
	l, err := ledger.Restore(projects, states, nil, 0)
	if err != nil {
		return f, fmt.Errorf("grant balances: %w", err)
	}
	if f.Balances, err = l.Balances(now, "", acct.ChargeFactors); err != nil {
		return f, err
	}
	f.Shares = l.Shares(now)
	f.RefuseUncovered = acct.RefuseUncovered
	if !acct.RequireGrant {
		parent := map[string]string{}
		for _, p := range projects {
			parent[p.Name] = p.Parent
		}
		for _, p := range projects {
			if !accounted(p.Name, parent, granted) {
				f.Balances = append(f.Balances, schedBalance(p.Name))
			}
		}
	}
	return f, nil
}

// accounted reports whether project p or an ancestor owns a grant.
func accounted(p string, parent map[string]string, granted map[string]bool) bool {
	for q, n := p, 0; q != "" && n < 64; q, n = parent[q], n+1 {
		if granted[q] {
			return true
		}
	}
	return false
}

// CheckLedger implements store.Grants.
func (s *Store) CheckLedger(ctx context.Context) error {
	o := s.reader()
	projects, err := listRows[model.Project](ctx, o, `SELECT data FROM projects ORDER BY name`)
	if err != nil {
		return err
	}
	rows, err := queryGrants(ctx, o, `ORDER BY id`)
	if err != nil {
		return err
	}
	// Grants are loaded parents first: a split-in names its parent.
	grants := make([]model.Grant, len(rows))
	for i := range rows {
		grants[i] = rows[i].info.Grant
	}
	entries, err := s.LedgerEntries(ctx, "", 0, 0)
	if err != nil {
		return err
	}
	l, err := ledger.Load(projects, grants, entries, nil)
	if err != nil {
		return fmt.Errorf("check the ledger: %w", err)
	}
	var errs []error
	for _, g := range rows {
		a, _ := l.Account(g.info.ID)
		st := g.state
		if a.Total != st.Total || a.Charged != st.Charged || a.Expired != st.Expired || a.Held != st.Held || a.Holds != st.Holds || a.Parent != st.Parent {
			errs = append(errs, fmt.Errorf("grant %s: stored sums total=%d charged=%d expired=%d held=%d holds=%d, its entries say %d %d %d %d %d",
				g.info.ID, st.Total, st.Charged, st.Expired, st.Held, st.Holds, a.Total, a.Charged, a.Expired, a.Held, a.Holds))
		}
	}
	hr, err := o.query(ctx, `SELECT job, grant_id, amount FROM grant_holds ORDER BY job`)
	if err != nil {
		return err
	}
	defer hr.Close()
	n := 0
	for hr.Next() {
		var job, grant string
		var amount int64
		if err := hr.Scan(&job, &grant, &amount); err != nil {
			return err
		}
		n++
		if g, a, ok := l.Held(job); !ok || g != grant || a != amount {
			errs = append(errs, fmt.Errorf("job %s: stored hold of %d on grant %s, entries say %v %d on %s", job, amount, grant, ok, a, g))
		}
	}
	if err := hr.Err(); err != nil {
		return err
	}
	holds := 0
	for _, a := range l.Accounts() {
		holds += a.Holds
	}
	if holds != n {
		errs = append(errs, fmt.Errorf("%d holds stored, the entries leave %d open", n, holds))
	}
	return errors.Join(errs...)
}

// --- jobs: hold at start, charge at end ---

// jobGrants keeps the books of a transaction that changes jobs (Apply,
// UpdateJob): jobs that left running are charged and their use recorded,
// then jobs that started are held. before holds the jobs as they were,
// after as they will be written. A start no grant covers fails the whole
// transaction with a *store.GrantRefusal naming every such job. now 0 is
// the wall clock (UpdateJob has no time of its own; a run's end is its
// End when set).
func (s *Store) jobGrants(ctx context.Context, tx *sql.Tx, before map[string]store.Job, after []store.Job, now int64) error {
	if now == 0 {
		now = time.Now().Unix()
	}
	var ended, started []*store.Job
	for i := range after {
		j := &after[i]
		b, ok := before[j.ID]
		if !ok {
			continue
		}
		if b.State == model.JobRunning && (j.State != model.JobRunning || j.Epoch != b.Epoch) {
			ended = append(ended, j)
		}
		if j.State == model.JobRunning && (b.State != model.JobRunning || j.Epoch != b.Epoch) {
			started = append(started, j)
		}
	}
	for _, j := range ended {
		if err := s.endRun(ctx, tx, before[j.ID], j, now); err != nil {
			return err
		}
	}
	if len(started) == 0 {
		return nil
	}
	return s.holdStarts(ctx, tx, started, now)
}

// where is the site and class a job's allocation is on (its first node
// with accelerators), read in tx.
func (s *Store) where(ctx context.Context, tx *sql.Tx, alloc []store.Alloc) (site, class string, err error) {
	for _, a := range alloc {
		if a.Accelerators == 0 && len(alloc) > 1 {
			continue
		}
		n, err := scanNode(s.in(tx).queryRow(ctx, `SELECT data, rev, heartbeat FROM nodes WHERE name = ?`, a.Node))
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", nil // a node deleted since: its use is of no known site
		}
		if err != nil {
			return "", "", fmt.Errorf("read node %s: %w", a.Node, err)
		}
		return n.Site, n.Model, nil
	}
	return "", "", nil
}

func allocSums(alloc []store.Alloc) (acc, cpus int) {
	for _, a := range alloc {
		acc += a.Accelerators
		cpus += a.CPUs
	}
	return acc, cpus
}

// endRun charges a run that ended (or was requeued) and records its use.
func (s *Store) endRun(ctx context.Context, tx *sql.Tx, b store.Job, j *store.Job, now int64) error {
	end := j.End
	if end == 0 || j.State == model.JobRunning || j.State == model.JobPending {
		end = now
	}
	end = max(end, b.Start)
	o := s.in(tx)
	var site, class, programme string
	err := o.queryRow(ctx, `SELECT site, model, programme FROM grant_holds WHERE job = ?`, b.ID).Scan(&site, &class, &programme)
	held := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the hold of job %s: %w", b.ID, err)
	}
	if held {
		bk, err := s.openBook(ctx, tx, `WHERE id IN (SELECT grant_id FROM grant_holds WHERE job = ?)`, []any{b.ID}, []string{b.ID})
		if err != nil {
			return err
		}
		entries, err := bk.l.Settle(b.ID, end-b.Start, now)
		if err != nil {
			return fmt.Errorf("charge job %s: %w", b.ID, ledgerErr(err))
		}
		if err := bk.write(ctx, entries); err != nil {
			return err
		}
	} else if site, class, err = s.where(ctx, tx, b.Alloc); err != nil {
		return err
	}
	acc, cpus := allocSums(b.Alloc)
	kwh, measured := store.MeasuredEnergy(j.Ranks, b.Epoch, b.Alloc) // the agents' measurement, when whole
	parts, err := usage.Pieces(usage.Record{Job: b.ID, User: b.User, Project: b.Project, Site: site, Model: class, Programme: programme,
		Start: b.Start, End: end, Accelerators: acc, CPUs: cpus, EnergyKWh: kwh, Measured: measured})
	if err != nil {
		return fmt.Errorf("record the use of job %s: %w", b.ID, err)
	}
	if !j.State.Final() {
		for i := range parts {
			parts[i].Jobs = 0 // a requeued run: the job has not ended
		}
	}
	return s.addUsage(ctx, tx, parts)
}

// addUsage adds parts to the usage sums. The parts of one call have
// distinct keys (PostgreSQL refuses to upsert one row twice in a
// statement).
func (s *Store) addUsage(ctx context.Context, tx *sql.Tx, parts []usage.Part) error {
	const upsert = ` ON CONFLICT (user_name, project, site, model, programme, month) DO UPDATE SET
		jobs = usage_sums.jobs + excluded.jobs, acc_s = usage_sums.acc_s + excluded.acc_s, cpu_s = usage_sums.cpu_s + excluded.cpu_s,
		wall_s = usage_sums.wall_s + excluded.wall_s, measured_kwh = usage_sums.measured_kwh + excluded.measured_kwh,
		measured_acc_s = usage_sums.measured_acc_s + excluded.measured_acc_s`
	tuple := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	for _, n := range chunks(len(parts), 128) {
		vals := make([]any, 0, 12*n)
		tuples := make([]string, n)
		for i, p := range parts[:n] {
			tuples[i] = tuple
			vals = append(vals, p.User, p.Project, p.Site, p.Model, p.Programme, p.Month, p.Jobs, p.AcceleratorSeconds,
				p.CPUSeconds, p.WallSeconds, p.MeasuredKWh, p.MeasuredAcceleratorSeconds)
		}
		q := `INSERT INTO usage_sums (user_name, project, site, model, programme, month, jobs, acc_s, cpu_s, wall_s, measured_kwh, measured_acc_s) VALUES ` +
			strings.Join(tuples, ", ") + upsert
		if _, err := s.in(tx).exec(ctx, q, vals...); err != nil {
			return fmt.Errorf("add to the usage sums: %w", err)
		}
		parts = parts[n:]
	}
	return nil
}

// holdStarts holds the worst case of every job starting, or fails with a
// *store.GrantRefusal naming those no grant covers.
func (s *Store) holdStarts(ctx context.Context, tx *sql.Tx, jobs []*store.Job, now int64) error {
	o := s.in(tx)
	acct, err := s.accounting(ctx, o)
	if err != nil {
		return err
	}
	granted, err := grantedProjects(ctx, o)
	if err != nil {
		return err
	}
	if len(granted) == 0 && !acct.RequireGrant {
		return nil
	}
	projects, err := listRows[model.Project](ctx, o, `SELECT data FROM projects ORDER BY name`)
	if err != nil {
		return fmt.Errorf("read projects: %w", err)
	}
	parent := map[string]string{}
	for _, p := range projects {
		parent[p.Name] = p.Parent
	}
	var chain []any
	seen := map[string]bool{}
	var due []*store.Job
	for _, j := range jobs {
		if acc, _ := allocSums(j.Alloc); acc == 0 || (!acct.RequireGrant && !accounted(j.Project, parent, granted)) {
			continue
		}
		due = append(due, j)
		for q, n := j.Project, 0; q != "" && n < 64; q, n = parent[q], n+1 {
			if !seen[q] {
				seen[q] = true
				chain = append(chain, q)
			}
		}
	}
	if len(due) == 0 {
		return nil
	}
	b, err := s.openBook(ctx, tx, `WHERE project IN (`+placeholders(len(chain))+`) AND valid_from <= ? AND valid_until > ?`,
		append(chain, now, now), nil)
	if err != nil {
		return err
	}
	refused := map[string]string{}
	var entries []ledger.Entry
	for _, j := range due {
		site, class, err := s.where(ctx, tx, j.Alloc)
		if err != nil {
			return err
		}
		acc, _ := allocSums(j.Alloc)
		factor := ledger.Factors(acct.ChargeFactors).Of(class)
		es, err := b.l.Hold(ledger.HoldRequest{Job: j.ID, Project: j.Project, Model: class, Site: site,
			Accelerators: acc, Limit: j.Limit, Factor: factor}, now)
		if err != nil {
			refused[j.ID] = err.Error()
			continue
		}
		programme := ""
		if g := b.rows[es[0].Grant]; g != nil {
			programme = g.info.Programme
		}
		b.held[j.ID] = [3]string{site, class, programme}
		entries = append(entries, es...)
	}
	if len(refused) > 0 {
		return &store.GrantRefusal{Jobs: refused}
	}
	return b.write(ctx, entries)
}

// RecordUsage implements store.Grants.
func (s *Store) RecordUsage(ctx context.Context, records []usage.Record) error {
	type key struct{ user, project, site, model, programme, month string }
	sums := map[key]*usage.Part{}
	var order []key
	for _, r := range records {
		parts, err := usage.Pieces(r)
		if err != nil {
			return invalidf("%v", err)
		}
		for _, p := range parts {
			k := key{p.User, p.Project, p.Site, p.Model, p.Programme, p.Month}
			t := sums[k]
			if t == nil {
				t = &usage.Part{User: p.User, Project: p.Project, Site: p.Site, Model: p.Model, Programme: p.Programme, Month: p.Month}
				sums[k] = t
				order = append(order, k)
			}
			t.Jobs += p.Jobs
			t.AcceleratorSeconds += p.AcceleratorSeconds
			t.CPUSeconds += p.CPUSeconds
			t.WallSeconds += p.WallSeconds
			t.MeasuredKWh += p.MeasuredKWh
			t.MeasuredAcceleratorSeconds += p.MeasuredAcceleratorSeconds
		}
	}
	parts := make([]usage.Part, len(order))
	for i, k := range order {
		parts[i] = *sums[k]
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return s.addUsage(ctx, tx, parts) })
}

// UsageParts implements store.Grants.
func (s *Store) UsageParts(ctx context.Context, f store.UsageFilter) ([]usage.Part, error) {
	var where []string
	var args []any
	if f.From != "" {
		where, args = append(where, "month >= ?"), append(args, f.From)
	}
	if f.To != "" {
		where, args = append(where, "month <= ?"), append(args, f.To)
	}
	if f.User != "" {
		where, args = append(where, "user_name = ?"), append(args, f.User)
	}
	if f.Projects != nil {
		if len(f.Projects) == 0 {
			return []usage.Part{}, nil
		}
		where = append(where, "project IN ("+placeholders(len(f.Projects))+")")
		for _, p := range f.Projects {
			args = append(args, p)
		}
	}
	q := `SELECT user_name, project, site, model, programme, month, jobs, acc_s, cpu_s, wall_s, measured_kwh, measured_acc_s FROM usage_sums`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.reader().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	defer rows.Close()
	out := []usage.Part{}
	for rows.Next() {
		var p usage.Part
		if err := rows.Scan(&p.User, &p.Project, &p.Site, &p.Model, &p.Programme, &p.Month, &p.Jobs, &p.AcceleratorSeconds,
			&p.CPUSeconds, &p.WallSeconds, &p.MeasuredKWh, &p.MeasuredAcceleratorSeconds); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
