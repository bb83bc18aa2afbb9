-- A user whose password was generated (by the demo, `user:create` or
-- `user:password` without a password) must choose their own at the next
-- panel sign-in; changing it clears the flag.
ALTER TABLE platform_users ADD COLUMN password_change_required BOOLEAN NOT NULL DEFAULT FALSE;
