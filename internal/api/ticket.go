package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// A log ticket lets the server's log proxy read one rank's output from
// the node's agent without handing the agent the caller's token: the
// server signs (job, epoch, rank, expiry) with the node's log key, which
// the node's agent receives in its orders (Orders.LogKey), and the agent
// checks the signature. A ticket opens one rank's output on one node, for
// a minute; a caller's token would open everything the caller may do.

// TicketScheme prefixes a ticket in the Authorization header.
const TicketScheme = "Ticket "

// LogTicket signs access to the output of rank of job's run epoch until
// exp (Unix seconds).
func LogTicket(key, job string, epoch int64, rank int, exp int64) string {
	return strconv.FormatInt(exp, 10) + "." + ticketMAC(key, job, epoch, rank, exp)
}

// CheckLogTicket says whether ticket grants the output of rank of job's
// run epoch at time now (Unix seconds), allowing skew seconds of clock
// difference between server and node.
func CheckLogTicket(key, ticket, job string, epoch int64, rank int, now, skew int64) error {
	if key == "" {
		return fmt.Errorf("this agent has no log key yet: it has not heard from the server")
	}
	expText, mac, ok := strings.Cut(ticket, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("a log ticket reads EXPIRY.SIGNATURE; read logs through the server (usine logs JOB)")
	}
	if !hmac.Equal([]byte(mac), []byte(ticketMAC(key, job, epoch, rank, exp))) {
		return fmt.Errorf("the log ticket is not for job %s epoch %d rank %d on this node", job, epoch, rank)
	}
	if now > exp+skew {
		return fmt.Errorf("the log ticket expired %d s ago; ask the server again", now-exp)
	}
	return nil
}

func ticketMAC(key, job string, epoch int64, rank int, exp int64) string {
	m := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(m, "logs/%s/%d/%d/%d", job, epoch, rank, exp)
	return hex.EncodeToString(m.Sum(nil))
}
