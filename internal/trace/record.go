package trace

// Record is one job of a usine trace CSV v1 file.
type Record struct {
	ID           string
	Submit       int64 // seconds from the trace start
	Project      string
	User         string
	Accelerators int    // total; 0 = CPU only
	Nodes        int    // 0 = let the scheduler pack
	Runtime      int64  // actual run time, seconds
	Limit        int64  // requested limit, seconds; 0 when the file left it empty (see DefaultLimit)
	State        string // completed, failed, cancelled, timeout
	Model        string // accelerator model constraint; not a CSV v1 column, filled by readers that know it
	Line         int    // line in the file it came from, for errors
}
