/** Moved to scripts/lib/supabase/roles.ts (Supabase's database side lives in scripts/lib/supabase/); kept so existing imports work. */
export * from "./supabase/roles";
