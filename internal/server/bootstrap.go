package server

import (
	"context"
	"fmt"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Seed declares a cluster's sites, partitions and nodes in an empty store.
// A store that already has nodes is left alone: the operator's changes
// since (drains, new nodes) win over the file.
func Seed(ctx context.Context, st store.Store, c *model.Cluster) (bool, error) {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return false, fmt.Errorf("seed: list nodes: %w", err)
	}
	if len(nodes) > 0 {
		return false, nil
	}
	for _, s := range c.Sites {
		if err := st.PutSite(ctx, s); err != nil {
			return false, fmt.Errorf("seed site %s: %w", s.Name, err)
		}
	}
	for _, p := range c.Partitions {
		if err := st.PutPartition(ctx, p); err != nil {
			return false, fmt.Errorf("seed partition %s: %w", p.Name, err)
		}
	}
	for _, n := range c.Nodes {
		if _, err := st.PutNode(ctx, store.Node{Node: n}); err != nil {
			return false, fmt.Errorf("seed node %s: %w", n.Name, err)
		}
	}
	return true, nil
}

// EnsureAdmin makes sure the factory has an administrator. On a store
// without one it creates the user "admin" with the site-wide admin role, a
// project "default" it may submit to, and a token whose secret it returns
// (shown once); otherwise it returns "".
func (s *Server) EnsureAdmin(ctx context.Context) (string, error) {
	ms, err := s.store.Members(ctx, "*", "")
	if err != nil {
		return "", fmt.Errorf("look for an admin: %w", err)
	}
	for _, m := range ms {
		if m.Project == "" && m.Role == store.RoleAdmin {
			return "", nil
		}
	}
	if err := s.store.PutProject(ctx, model.Project{Name: "default", Shares: 1}); err != nil {
		return "", fmt.Errorf("create the default project: %w", err)
	}
	for _, m := range []store.Member{{Project: "", User: "admin", Role: store.RoleAdmin}, {Project: "default", User: "admin", Role: store.RoleManager}} {
		if err := s.store.PutMember(ctx, m); err != nil {
			return "", fmt.Errorf("create the admin: %w", err)
		}
	}
	_, secret, err := s.IssueToken(ctx, "admin", "created at first start", 0)
	return secret, err
}
