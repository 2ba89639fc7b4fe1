-- +goose Up
-- A ticket event's note as a message of the catalogs (issue 18), so the
-- ticket page says it in its reader's language: note_id is the English text
-- with go-i18n parameters ("to {{.Name}}"), note_args their values as a JSON
-- object ({"Name": "Sam"}; a word of the product as {"term": "Invoice"}).
-- note keeps the English text (the audit trail, exports, old readers).
-- Notes written before are converted where their pattern is recognised
-- exactly; the rest stays English text (a classification that changed
-- several things at once, a subject with quotes or backslashes).
ALTER TABLE support_events ADD COLUMN note_id TEXT NOT NULL DEFAULT '';
ALTER TABLE support_events ADD COLUMN note_args JSONB NOT NULL DEFAULT '{}';

-- fixed texts
UPDATE support_events SET note_id = note WHERE note_id = '' AND (
    (action = 'created' AND note IN ('via portal', 'via api', 'via staff'))
    OR (action = 'billable' AND note IN ('marked billable', 'marked not billable'))
    OR (action = 'sla_warning' AND note IN ('first response at 80 %', 'resolution at 80 %'))
    OR (action = 'sla_breach' AND note IN ('first response target breached', 'resolution target breached')));

-- assigned / reassigned "to <name>", merged "into T-1042", closed by the job
UPDATE support_events SET note_id = 'to {{.Name}}', note_args = jsonb_build_object('Name', substr(note, 4))
WHERE note_id = '' AND action IN ('open', 'assign') AND note LIKE 'to %';
UPDATE support_events SET note_id = 'into {{.Number}}', note_args = jsonb_build_object('Number', substr(note, 6))
WHERE note_id = '' AND action = 'merge' AND note ~ '^into T-[0-9]+$';
UPDATE support_events SET note_id = '{{.Days}} days after resolution', note_args = jsonb_build_object('Days', 7)
WHERE note_id = '' AND action = 'close' AND note = '7 days after resolution';
UPDATE support_events SET note_id = '{{.Number}} was merged into this ticket',
    note_args = jsonb_build_object('Number', substring(note from '^(T-[0-9]+) '))
WHERE note_id = '' AND action = 'merged_in' AND note ~ '^T-[0-9]+ was merged into this ticket$';

-- a reason typed by a person stays as typed
UPDATE support_events SET note_id = 'marked billable: {{.Reason}}', note_args = jsonb_build_object('Reason', substr(note, 18))
WHERE note_id = '' AND action = 'billable' AND note LIKE 'marked billable: %';
UPDATE support_events SET note_id = 'marked not billable: {{.Reason}}', note_args = jsonb_build_object('Reason', substr(note, 22))
WHERE note_id = '' AND action = 'billable' AND note LIKE 'marked not billable: %';

-- booked, removed, moved and billed time
UPDATE support_events e SET note_id = '{{.Minutes}} min ' || (x.m)[2] || ' by {{.Agent}}',
    note_args = jsonb_build_object('Minutes', (x.m)[1]::bigint, 'Agent', (x.m)[3])
FROM (SELECT id, regexp_match(note, '^([0-9]+) min (billable|non-billable) by (.*)$') AS m FROM support_events WHERE action = 'time') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'removed {{.Minutes}} min booked by {{.Agent}}',
    note_args = jsonb_build_object('Minutes', (x.m)[1]::bigint, 'Agent', (x.m)[2])
FROM (SELECT id, regexp_match(note, '^removed ([0-9]+) min booked by (.*)$') AS m FROM support_events WHERE action = 'time_removed') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = '{{.Count}} time entries of {{.Number}} moved here ({{.Minutes}} min)',
    note_args = jsonb_build_object('Count', (x.m)[1]::bigint, 'Number', (x.m)[3], 'Minutes', (x.m)[4]::bigint)
FROM (SELECT id, regexp_match(note, '^([0-9]+) time entr(y|ies) of (T-[0-9]+) moved here \(([0-9]+) min\)$') AS m FROM support_events WHERE action = 'time_moved') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'to billing: {{.Minutes}} min', note_args = jsonb_build_object('Minutes', (x.m)[1]::bigint)
FROM (SELECT id, regexp_match(note, '^to billing: ([0-9]+) min$') AS m FROM support_events WHERE action = 'billing') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'to billing: {{.Minutes}} min and the {{.Priority}} case fee',
    note_args = jsonb_build_object('Minutes', (x.m)[1]::bigint, 'Priority', (x.m)[2])
FROM (SELECT id, regexp_match(note, '^to billing: ([0-9]+) min and the (P[1-4]) case fee$') AS m FROM support_events WHERE action = 'billing') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';

-- links: the kind is a word of the product
UPDATE support_events e SET note_id = 'linked {{.Kind}} {{.Ref}}',
    note_args = jsonb_build_object('Kind', jsonb_build_object('term', (x.m)[1]), 'Ref', (x.m)[2])
FROM (SELECT id, regexp_match(note, '^linked (Data container|Invoice|Vehicle \(VIN\)) (.+)$') AS m FROM support_events WHERE action = 'link') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'removed link to {{.Kind}} {{.Ref}}',
    note_args = jsonb_build_object('Kind', jsonb_build_object('term', (x.m)[1]), 'Ref', (x.m)[2])
FROM (SELECT id, regexp_match(note, '^removed link to (Data container|Invoice|Vehicle \(VIN\)) (.+)$') AS m FROM support_events WHERE action = 'unlink') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';

-- a classification that changed one thing
UPDATE support_events e SET note_id = 'priority {{.From}} → {{.To}}', note_args = jsonb_build_object('From', (x.m)[1], 'To', (x.m)[2])
FROM (SELECT id, regexp_match(note, '^priority (P[1-4]) → (P[1-4])$') AS m FROM support_events WHERE action = 'classify') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'category {{.From}} → {{.To}}',
    note_args = jsonb_build_object('From', jsonb_build_object('term', (x.m)[1]), 'To', jsonb_build_object('term', (x.m)[2]))
FROM (SELECT id, regexp_match(note, '^category (Onboarding|API and data|Data quality|Billing|Other) → (Onboarding|API and data|Data quality|Billing|Other)$') AS m
    FROM support_events WHERE action = 'classify') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';
UPDATE support_events e SET note_id = 'subject "{{.Subject}}"', note_args = jsonb_build_object('Subject', (x.m)[1])
FROM (SELECT id, regexp_match(note, '^subject "([^"\\]*)"$') AS m FROM support_events WHERE action = 'classify') x
WHERE e.id = x.id AND x.m IS NOT NULL AND e.note_id = '';

-- +goose Down
ALTER TABLE support_events DROP COLUMN note_args;
ALTER TABLE support_events DROP COLUMN note_id;
