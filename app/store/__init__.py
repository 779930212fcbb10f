"""The audit/feedback store: engine and migrations (`db`), ORM tables, repository queries."""
