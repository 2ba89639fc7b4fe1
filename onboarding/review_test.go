package onboarding_test

import (
	"strconv"
	"testing"

	"cardata/onboarding"
	"cardata/policies/errs"
)

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

func TestReviewWorkflowHappyPathWithQuestion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Alpen Versicherung AG", "AT", "ATU13585627")
	id := r.Provider.ID
	p, err := f.svc.Review(f.staff, id, onboarding.ActionClaim, "")
	if err != nil || p.Status != onboarding.StatusInReview || p.ReviewerID == nil || *p.ReviewerID != f.staffID || p.ReviewerName != "Petra PM" {
		t.Fatalf("claim: %+v %v", p, err)
	}
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionRequestInfo, ""); fieldCode(err, "question") != "question_required" {
		t.Fatalf("question required: %v", err)
	}
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionRequestInfo, "Who signs for the company?"); err != nil {
		t.Fatal(err)
	}
	// Approving while the question is open is a clear conflict.
	_, err = f.svc.Review(f.staff, id, onboarding.ActionApprove, "")
	if !errs.Is(err, "transition_not_allowed") || errs.KindOf(err) != errs.Conflict {
		t.Fatalf("approve from info_requested: %v", err)
	}
	// Staff cannot answer for the provider; the provider answers.
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionAnswer, "x"); err == nil {
		t.Fatal("staff answered for the provider")
	}
	p, err = f.svc.AnswerQuestion(providerCtx(r.Admin), id, "Our managing director, Dr. Alpen.")
	if err != nil || p.Status != onboarding.StatusInReview {
		t.Fatalf("answer: %+v %v", p, err)
	}
	if p, err = f.svc.Review(f.staff, id, onboarding.ActionApprove, ""); err != nil || p.Status != onboarding.StatusActive || p.ApprovedAt == nil {
		t.Fatalf("approve: %+v %v", p, err)
	}
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionSuspend, ""); fieldCode(err, "reason") != "reason_required" {
		t.Fatalf("suspend without reason: %v", err)
	}
	if p, _ = f.svc.Review(f.staff, id, onboarding.ActionSuspend, "unpaid invoices"); p.Status != onboarding.StatusSuspended {
		t.Fatalf("suspend: %+v", p)
	}
	if active, _ := f.svc.ProviderIsActive(f.ctx, id); active {
		t.Fatal("suspended provider is active")
	}
	if p, _ = f.svc.Review(f.staff, id, onboarding.ActionReactivate, ""); p.Status != onboarding.StatusActive {
		t.Fatalf("reactivate: %+v", p)
	}
	if p, _ = f.svc.Review(f.staff, id, onboarding.ActionTerminate, "contract ended"); p.Status != onboarding.StatusTerminated {
		t.Fatalf("terminate: %+v", p)
	}
	for _, a := range []onboarding.Action{onboarding.ActionReactivate, onboarding.ActionTerminate, onboarding.ActionClaim} {
		if _, err := f.svc.Review(f.staff, id, a, "again"); !errs.Is(err, "provider_terminated") {
			t.Fatalf("%s after termination: %v", a, err)
		}
	}
	// Every step is in the timeline, in the audit trail and was e-mailed.
	events, _ := f.svc.FindEvents(f.ctx, id)
	var actions []string
	for _, e := range events {
		actions = append(actions, string(e.Action))
	}
	want := "submit claim request_info answer approve suspend reactivate terminate"
	if got := join(actions); got != want {
		t.Fatalf("timeline %q, want %q", got, want)
	}
	var audits, mails int64
	f.svc.DB.Raw("SELECT count(*) FROM audit_entries WHERE object_type = 'provider' AND object_id = ? AND action LIKE 'provider.%'", itoa(id)).Scan(&audits)
	f.svc.DB.Raw("SELECT count(*) FROM email_outbox WHERE object_type = 'provider' AND object_id = ?", itoa(id)).Scan(&mails)
	if audits != 8 || mails != 8 {
		t.Fatalf("audits %d mails %d, want 8 each", audits, mails)
	}
	var reviewerMail int64
	f.svc.DB.Raw("SELECT count(*) FROM email_outbox WHERE kind = 'provider.answered' AND to_addr = 'pm@test.local'").Scan(&reviewerMail)
	if reviewerMail != 1 {
		t.Fatal("the reviewer was not told about the answer")
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestEveryInvalidTransitionIsAConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.mustRegister(t, "Conflict AG", "DE", "DE136695976")
	id := r.Provider.ID
	for _, a := range []onboarding.Action{onboarding.ActionApprove, onboarding.ActionReject, onboarding.ActionRequestInfo, onboarding.ActionSuspend, onboarding.ActionReactivate} {
		_, err := f.svc.Review(f.staff, id, a, "because")
		if errs.KindOf(err) != errs.Conflict {
			t.Errorf("%s from submitted: %v", a, err)
		}
	}
	if _, err := f.svc.AnswerQuestion(providerCtx(r.Admin), id, "unasked"); errs.KindOf(err) != errs.Conflict {
		t.Errorf("answer without question: %v", err)
	}
	if _, err := f.svc.Review(f.staff, id, "publish", ""); errs.KindOf(err) != errs.BadRequest {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := f.svc.Review(f.staff, 999999, onboarding.ActionClaim, ""); !errs.Is(err, "provider_not_found") {
		t.Errorf("unknown provider: %v", err)
	}
	if _, err := f.svc.Review(providerCtx(r.Admin), id, onboarding.ActionClaim, ""); errs.KindOf(err) != errs.Forbidden {
		t.Errorf("provider claimed its own application: %v", err)
	}
	// The table offers exactly the allowed actions.
	p, _ := f.svc.FindProviderByID(f.ctx, id)
	var offered []string
	for _, tr := range p.StaffActions() {
		offered = append(offered, string(tr.Action))
	}
	if join(offered) != "claim" {
		t.Fatalf("actions from submitted: %v", offered)
	}
	// An application is rejected, never terminated: the service refuses it too.
	if _, err := f.svc.Review(f.staff, id, onboarding.ActionTerminate, "no contract yet"); !errs.Is(err, "transition_not_allowed") {
		t.Fatalf("terminate an application: %v", err)
	}
}
