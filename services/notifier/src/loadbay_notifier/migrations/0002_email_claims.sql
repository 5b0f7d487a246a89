-- Which sender claimed a pending email, so a sender restarted after a crash takes back its
-- own unfinished sends at once instead of waiting for their lease to run out.
ALTER TABLE emails ADD COLUMN claimed_by text;
