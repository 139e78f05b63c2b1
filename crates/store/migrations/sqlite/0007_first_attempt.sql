-- A delivery that succeeds at its first attempt keeps that attempt on its own row instead of a
-- delivery_attempts row (most deliveries do): one insert and one index entry fewer per
-- delivery. The log still shows it as an attempt; a resend moves it to delivery_attempts first.
ALTER TABLE deliveries ADD COLUMN first_duration_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN first_response_body TEXT;
