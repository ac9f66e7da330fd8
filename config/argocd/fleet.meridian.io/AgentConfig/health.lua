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
local ready, reconciling
for _, c in ipairs(obj.status.conditions) do
  -- Stalled: the rollout stopped (a cluster failed or passed its deadline). Degraded: a cluster
  -- failed under failurePolicy Continue, or another AgentConfig selects the same clusters.
  if (c.type == "Stalled" or c.type == "Degraded") and c.status == "True" then
    return { status = "Degraded", message = c.message }
  end
  if c.type == "Ready" then ready = c end
  if c.type == "Reconciling" then reconciling = c end
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
