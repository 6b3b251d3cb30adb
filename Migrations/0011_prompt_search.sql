-- Gallery search over prompts: each prompt as words in the 'simple' configuration (lower-cased, no
-- language's stemming or stop words, so a prompt in any language is found by its own words; prefix
-- queries give search-as-you-type), indexed per user (btree_gin lets one GIN index hold the user id too;
-- it is a trusted extension, so the database's owner may create it).
CREATE EXTENSION IF NOT EXISTS btree_gin;
ALTER TABLE images ADD COLUMN prompt_search tsvector GENERATED ALWAYS AS (to_tsvector('simple', prompt)) STORED;
ALTER TABLE videos ADD COLUMN prompt_search tsvector GENERATED ALWAYS AS (to_tsvector('simple', prompt)) STORED;
CREATE INDEX images_prompt_search_idx ON images USING gin (user_id, prompt_search);
CREATE INDEX videos_prompt_search_idx ON videos USING gin (user_id, prompt_search);
