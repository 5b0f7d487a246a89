-- Appends keep every file in the DLZ; reloads replace the previous reload's files.
ALTER TABLE dlz_publications ADD COLUMN replace boolean NOT NULL DEFAULT true;
