package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// putJSON upserts a named object kept as JSON.
func (s *Store) putJSON(ctx context.Context, table, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", table, name, err)
	}
	_, err = s.writer().exec(ctx, `INSERT INTO `+table+` (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data`, name, string(data))
	if err != nil {
		return fmt.Errorf("put %s %s: %w", table, name, err)
	}
	return nil
}

// listJSON reads every object of a table, by name.
func listJSON[T any](ctx context.Context, s *Store, table string) ([]T, error) {
	rows, err := s.reader().query(ctx, `SELECT data FROM `+table+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", table, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var data string
		var v T
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", table, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// PutSite implements store.Store.
func (s *Store) PutSite(ctx context.Context, v model.Site) error {
	return s.putJSON(ctx, "sites", v.Name, v)
}

// Sites implements store.Store.
func (s *Store) Sites(ctx context.Context) ([]model.Site, error) {
	return listJSON[model.Site](ctx, s, "sites")
}

// PutPartition implements store.Store.
func (s *Store) PutPartition(ctx context.Context, v model.Partition) error {
	return s.putJSON(ctx, "partitions", v.Name, v)
}

// Partitions implements store.Store.
func (s *Store) Partitions(ctx context.Context) ([]model.Partition, error) {
	return listJSON[model.Partition](ctx, s, "partitions")
}

// PutProject implements store.Store.
func (s *Store) PutProject(ctx context.Context, v model.Project) error {
	return s.putJSON(ctx, "projects", v.Name, v)
}

// Projects implements store.Store.
func (s *Store) Projects(ctx context.Context) ([]model.Project, error) {
	return listJSON[model.Project](ctx, s, "projects")
}

// --- nodes ---

func scanNode(sc scanner) (store.Node, error) {
	var n store.Node
	var data string
	var rev, hb int64
	if err := sc.Scan(&data, &rev, &hb); err != nil {
		return n, err
	}
	if err := json.Unmarshal([]byte(data), &n); err != nil {
		return n, fmt.Errorf("decode node: %w", err)
	}
	n.Rev, n.Heartbeat = rev, hb
	return n, nil
}

func (s *Store) writeNode(ctx context.Context, o on, n *store.Node) error {
	data, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", n.Name, err)
	}
	_, err = o.exec(ctx, `INSERT INTO nodes (name, rev, heartbeat, data) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET rev = excluded.rev, heartbeat = excluded.heartbeat, data = excluded.data`,
		n.Name, n.Rev, n.Heartbeat, string(data))
	if err != nil {
		return fmt.Errorf("write node %s: %w", n.Name, err)
	}
	return nil
}

// PutNode implements store.Store.
func (s *Store) PutNode(ctx context.Context, n store.Node) (store.Node, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var rev int64
		err := s.in(tx).queryRow(ctx, `SELECT rev FROM nodes WHERE name = ?`+s.d.forUpdate, n.Name).Scan(&rev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		n.Rev = rev + 1
		return s.writeNode(ctx, s.in(tx), &n)
	})
	return n, err
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, name string) (store.Node, error) {
	n, err := scanNode(s.reader().queryRow(ctx, `SELECT data, rev, heartbeat FROM nodes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %s: %w", name, store.ErrNotFound)
	}
	return n, err
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	out, err := collect(ctx, s.reader(), scanNode, `SELECT data, rev, heartbeat FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// UpdateNode implements store.Store.
func (s *Store) UpdateNode(ctx context.Context, name string, fn func(*store.Node) error) (store.Node, error) {
	var n store.Node
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = scanNode(s.in(tx).queryRow(ctx, `SELECT data, rev, heartbeat FROM nodes WHERE name = ?`+s.d.forUpdate, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("node %s: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := fn(&n); err != nil {
			return err
		}
		n.Name = name
		n.Rev++
		return s.writeNode(ctx, s.in(tx), &n)
	})
	return n, err
}

// Heartbeats implements store.Store: one transaction, up to 512 nodes a
// statement. A heartbeat older than the one recorded is ignored.
func (s *Store) Heartbeats(ctx context.Context, names []string, t int64) error {
	if len(names) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, n := range chunks(len(names), 512) {
			args := []any{t, t}
			for _, name := range names[:n] {
				args = append(args, name)
			}
			if _, err := s.in(tx).exec(ctx, `UPDATE nodes SET heartbeat = ? WHERE heartbeat < ? AND name IN (`+placeholders(n)+`)`, args...); err != nil {
				return fmt.Errorf("record heartbeats of %d nodes: %w", n, err)
			}
			names = names[n:]
		}
		return nil
	})
}

// --- members and tokens ---

// PutMember implements store.Store.
func (s *Store) PutMember(ctx context.Context, m store.Member) error {
	_, err := s.writer().exec(ctx, `INSERT INTO members (project, user_name, role) VALUES (?, ?, ?)
		ON CONFLICT (project, user_name) DO UPDATE SET role = excluded.role`, m.Project, m.User, string(m.Role))
	if err != nil {
		return fmt.Errorf("put member %s of %q: %w", m.User, m.Project, err)
	}
	return nil
}

// DeleteMember implements store.Store.
func (s *Store) DeleteMember(ctx context.Context, project, user string) error {
	res, err := s.writer().exec(ctx, `DELETE FROM members WHERE project = ? AND user_name = ?`, project, user)
	if err != nil {
		return fmt.Errorf("delete member %s of %q: %w", user, project, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("member %s of %q: %w", user, project, store.ErrNotFound)
	}
	return nil
}

// Members implements store.Store.
func (s *Store) Members(ctx context.Context, project, user string) ([]store.Member, error) {
	query, args := `SELECT project, user_name, role FROM members`, []any{}
	switch {
	case user != "":
		query += ` WHERE user_name = ?`
		args = append(args, user)
	case project != "*":
		query += ` WHERE project = ?`
		args = append(args, project)
	}
	rows, err := s.reader().query(ctx, query+` ORDER BY project, user_name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Member
	for rows.Next() {
		var m store.Member
		var role string
		if err := rows.Scan(&m.Project, &m.User, &role); err != nil {
			return nil, err
		}
		m.Role = store.Role(role)
		out = append(out, m)
	}
	return out, rows.Err()
}

// PutToken implements store.Store.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode token %s: %w", t.ID, err)
	}
	_, err = s.writer().exec(ctx, `INSERT INTO tokens (id, user_name, hash, data) VALUES (?, ?, ?, ?)`, t.ID, t.User, t.Hash, string(data))
	if unique(err) {
		return fmt.Errorf("token %s: its ID or hash is taken: %w", t.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put token %s: %w", t.ID, err)
	}
	return nil
}

func (s *Store) scanTokens(rows *sql.Rows) ([]store.Token, error) {
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		var t store.Token
		var data string
		var hash []byte
		if err := rows.Scan(&data, &hash); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &t); err != nil {
			return nil, err
		}
		t.Hash = hash
		out = append(out, t)
	}
	return out, rows.Err()
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	rows, err := s.reader().query(ctx, `SELECT data, hash FROM tokens WHERE hash = ?`, hash)
	if err != nil {
		return store.Token{}, err
	}
	ts, err := s.scanTokens(rows)
	if err != nil {
		return store.Token{}, err
	}
	if len(ts) == 0 {
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	return ts[0], nil
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	rows, err := s.reader().query(ctx, `SELECT data, hash FROM tokens WHERE user_name = ? ORDER BY id`, user)
	if err != nil {
		return nil, err
	}
	return s.scanTokens(rows)
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.writer().exec(ctx, `DELETE FROM tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// --- audit and lease ---

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, e store.AuditEntry) error {
	if err := s.enqueue(ctx, &write{audit: []store.AuditEntry{e}}); err != nil {
		return fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// AuditLog implements store.Store.
func (s *Store) AuditLog(ctx context.Context, after int64, n int) ([]store.AuditEntry, error) {
	rows, err := s.reader().query(ctx, `SELECT id, time, actor, action, target, remote, status FROM audit WHERE id > ? ORDER BY id`+limit(n), after)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		if err := rows.Scan(&e.ID, &e.Time, &e.Actor, &e.Action, &e.Target, &e.Remote, &e.Status); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// AcquireLease implements store.Store. A holder that asks with ttl 0 gives
// its lease up.
func (s *Store) AcquireLease(ctx context.Context, holder string, now, ttl int64) (store.Lease, bool, error) {
	var l store.Lease
	ok := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := s.in(tx).queryRow(ctx, `SELECT holder, term, expires FROM leases WHERE name = 'scheduler'`+s.d.forUpdate).Scan(&l.Holder, &l.Term, &l.Expires)
		if err != nil {
			return fmt.Errorf("read lease: %w", err)
		}
		switch {
		case l.Holder == holder && l.Expires > now:
			l.Expires = now + ttl // renew, or give up with ttl 0
			ok = ttl > 0
		case l.Expires <= now && ttl > 0:
			l.Holder, l.Term, l.Expires = holder, l.Term+1, now+ttl
			ok = true
		default:
			return nil
		}
		_, err = s.in(tx).exec(ctx, `UPDATE leases SET holder = ?, term = ?, expires = ? WHERE name = 'scheduler'`, l.Holder, l.Term, l.Expires)
		return err
	})
	return l, ok, err
}

// Secret implements store.Store: the secret is made once, in the settings
// table; replicas that race to make it all read back the one that won.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make secret %s: %w", name, err)
	}
	key := "secret:" + name
	_, err := s.writer().exec(ctx, `INSERT INTO settings (name, data) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, key, hex.EncodeToString(fresh))
	if err != nil {
		return nil, fmt.Errorf("make secret %s: %w", name, err)
	}
	var data string
	if err := s.writer().queryRow(ctx, `SELECT data FROM settings WHERE name = ?`, key).Scan(&data); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	secret, err := hex.DecodeString(data)
	if err != nil || len(secret) != len(fresh) {
		return nil, fmt.Errorf("secret %s in the store is damaged (%d hex characters); delete its settings row to make a new one", name, len(data))
	}
	return secret, nil
}
