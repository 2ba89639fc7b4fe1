package devidp

// Staff are the company identities of the demo (`make run`): the demo
// staff accounts (their e-mail addresses link them at the first sign-in),
// a new hire whose account is created at the first sign-in, a leaver in
// no group, and someone whose groups break separation of duties. Groups
// map to roles through config.DevRoleMap.
func Staff() []Identity {
	return []Identity{
		{Subject: "dev-manager", Email: "manager@demo.local", Name: "Maria Manager", Groups: []string{"cardata-partner-managers"}},
		{Subject: "dev-manager2", Email: "manager2@demo.local", Name: "Paul Partner", Groups: []string{"cardata-partner-managers"}},
		{Subject: "dev-finance", Email: "finance@demo.local", Name: "Fiona Finance", Groups: []string{"cardata-finance"}},
		{Subject: "dev-finance2", Email: "finance2@demo.local", Name: "Felix Finance", Groups: []string{"cardata-finance"},
			Note: "second finance user: issues the credit notes Fiona drafts"},
		{Subject: "dev-support", Email: "support@demo.local", Name: "Sam Support", Groups: []string{"cardata-support"}},
		{Subject: "dev-admin", Email: "admin@demo.local", Name: "Ada Admin", Groups: []string{"cardata-admins"}},
		{Subject: "dev-auditor", Email: "auditor@demo.local", Name: "Otto Auditor", Groups: []string{"cardata-auditors"}},
		{Subject: "dev-newhire", Email: "new.hire@demo.local", Name: "Nina Newhire", Groups: []string{"cardata-support"},
			Note: "no CarData account yet: created at the first sign-in"},
		{Subject: "dev-leaver", Email: "leaver@demo.local", Name: "Lars Leaver", Groups: []string{"all-employees"},
			Note: "in no CarData group: refused"},
		{Subject: "dev-conflict", Email: "conflict@demo.local", Name: "Conny Conflict", Groups: []string{"cardata-admins", "cardata-finance"},
			Note: "administrator and finance: refused (separation of duties)"},
	}
}

// Customers are the manufacturer's customer identities of the demo: the
// demo vehicle owners (linked by e-mail at the first sign-in) and someone
// who holds no vehicle.
func Customers() []Identity {
	return []Identity{
		{Subject: "dev-anna", Email: "anna@demo.example", Name: "Anna Berger", Note: "BMW X1 in Austria; the insurer asks for consent"},
		{Subject: "dev-customer1", Email: "customer1@demo.local", Name: "Nils Andersen", Note: "a BMW with readings and an active consent"},
		{Subject: "dev-customer2", Email: "customer2@demo.local", Name: "Vera Meier"},
		{Subject: "dev-nocar", Email: "no.car@demo.example", Name: "Noah Nocar", Note: "holds no vehicle: refused"},
	}
}
