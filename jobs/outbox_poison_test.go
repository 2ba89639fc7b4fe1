package jobs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"cardata/jobs"
)

// An e-mail whose outcome the database refuses (here a trigger raising a
// data exception for that one row, as a bad value would) is set aside as
// failed with its error and counted; the e-mails behind it are sent, and
// the staff's retry queues it again.
func TestOutboxSetsAsideAnEmailItCannotProcess(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	enqueue(t, gdb,
		jobs.Message{Kind: "t", To: "poison@example.test", Subject: "s", Body: "b"},
		jobs.Message{Kind: "t", To: "next@example.test", Subject: "s", Body: "b"},
	)
	err := gdb.Exec(`CREATE FUNCTION poison_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22023'; END $$;
		CREATE TRIGGER poison BEFORE UPDATE ON email_outbox FOR EACH ROW
		WHEN (OLD.to_addr = 'poison@example.test' AND NEW.status <> 'failed') EXECUTE FUNCTION poison_outbox()`).Error
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o := &jobs.Outbox{DB: gdb, Log: quietLog()}
	o.Register(reg)
	n, err := o.ProcessDue(context.Background(), 10)
	if err != nil || n != 2 {
		t.Fatalf("processed %d: %v", n, err)
	}
	rows := emails(t, gdb)
	if p := rows["poison@example.test"]; p.Status != jobs.EmailFailed || !strings.Contains(p.LastError, "poisoned row") {
		t.Fatalf("poisoned e-mail: %+v", p)
	}
	if e := rows["next@example.test"]; e.Status != jobs.EmailLocal {
		t.Fatalf("the e-mail behind it: %+v", e)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "cardata_outbox_dead_letters_total" || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("metrics: %v %v", mfs, err)
	}
	if err := gdb.Exec("DROP TRIGGER poison ON email_outbox").Error; err != nil {
		t.Fatal(err)
	}
	if err := jobs.RetryEmail(asStaff(5, "admin"), gdb, rows["poison@example.test"].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := o.ProcessDue(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("after the retry: %d %v", n, err)
	}
	if p := emails(t, gdb)["poison@example.test"]; p.Status != jobs.EmailLocal {
		t.Fatalf("retried e-mail: %+v", p)
	}
}
