package staff

import "context"

// Active lists the active staff users who hold role, by name.
func (s *Service) Active(ctx context.Context, role string) ([]User, error) {
	var out []User
	for offset := 0; ; offset += 200 {
		page, total, err := s.List(ctx, Filter{Role: role, Offset: offset, Limit: 200})
		if err != nil {
			return nil, err
		}
		for _, u := range page {
			if u.Active {
				out = append(out, u)
			}
		}
		if int64(offset+200) >= total {
			return out, nil
		}
	}
}
