-- Argo CD health of a Meridian AgentConfig (fleet.meridian.io), read from its status conditions.
-- Runs without the string and math libraries (argocd-cm customizations have no useOpenLibs).
local hs = { status = "Progressing", message = "Waiting for Meridian to report the AgentConfig's status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for Meridian to observe generation " .. obj.metadata.generation
  return hs
end
local ready, reconciling, stalled, degraded
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Reconciling" then reconciling = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Degraded" then degraded = c end
end
-- Stalled: needs a person. The rollout stopped (a cluster failed or passed its deadline), or an
-- older AgentConfig holds clusters this one selects (reason AgentConfigConflict).
if stalled ~= nil and stalled.status == "True" then
  return { status = "Degraded", message = stalled.message }
end
-- Degraded: a cluster failed under failurePolicy Continue, or a younger AgentConfig also selects
-- clusters this one holds.
if degraded ~= nil and degraded.status == "True" then
  return { status = "Degraded", message = degraded.message }
end
if reconciling ~= nil and reconciling.status == "True" then
  -- spec.rollout.paused holds the rollout: clusters not yet handed the change keep their agents.
  if reconciling.reason == "RolloutPaused" then
    return { status = "Suspended", message = reconciling.message }
  end
  return { status = "Progressing", message = reconciling.message }
end
if ready ~= nil then
  if ready.status == "True" then
    return { status = "Healthy", message = ready.message }
  end
  return { status = "Progressing", message = ready.message }
end
return hs
