// The Azure side of accessdrift, at subscription scope:
//   az deployment sub create -l westeurope -f deploy/azure/main.bicep \
//     -p oidcIssuerUrl="$(az aks show -g RG -n CLUSTER --query oidcIssuerProfile.issuerUrl -o tsv)" \
//     -p clusterResourceGroup=RG clusterName=CLUSTER
//
// Bicep rather than Terraform: the subscription's diagnostic setting, the hub and the identity
// are plain ARM resources, Bicep needs no state backend to keep (the deployment history is the
// state), and `az` ships it. Outputs feed the kustomize overlay (client id, namespace, hub).

targetScope = 'subscription'

@description('Region of the resource group, Event Hubs namespace and identity.')
param location string = deployment().location

@description('Resource group created for accessdrift.')
param resourceGroupName string = 'rg-accessdrift'

@description('Event Hubs namespace name (globally unique).')
param namespaceName string = 'evhns-accessdrift-${uniqueString(subscription().id)}'

@description('Event hub that receives the Activity Log.')
param hubName string = 'activity-log'

@description('Dedicated consumer group of the daemon (never $Default: other readers must not steal partitions).')
param consumerGroupName string = 'accessdrift'

@description('OIDC issuer URL of the AKS cluster that runs accessdrift (oidcIssuerProfile.issuerUrl).')
param oidcIssuerUrl string

@description('Namespace and name of the daemon\'s Kubernetes service account (deploy/base).')
param serviceAccountNamespace string = 'accessdrift'
param serviceAccountName string = 'accessdrift'

@description('Resource group and name of the AKS cluster whose audit log (kube-audit-admin) goes to the hub, for who changed Kubernetes RBAC; empty: no cluster diagnostic setting.')
param clusterResourceGroup string = ''
param clusterName string = ''

@description('Partitions of the hub; the daemon reads all of them.')
@minValue(1)
@maxValue(32)
param partitionCount int = 2

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
}

module hub 'eventhub.bicep' = {
  name: 'accessdrift-eventhub'
  scope: rg
  params: {
    location: location
    namespaceName: namespaceName
    hubName: hubName
    consumerGroupName: consumerGroupName
    partitionCount: partitionCount
    oidcIssuerUrl: oidcIssuerUrl
    serviceAccountSubject: 'system:serviceaccount:${serviceAccountNamespace}:${serviceAccountName}'
  }
}

// Streams the subscription's Activity Log, Administrative category (role assignments, role
// definitions, cluster writes, credential listings), to the hub.
resource activityLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'accessdrift-activity-log'
  properties: {
    eventHubAuthorizationRuleId: hub.outputs.diagnosticsRuleId
    eventHubName: hubName
    logs: [
      {
        category: 'Administrative'
        enabled: true
      }
    ]
  }
}

// The cluster's audit log to the same hub: attribution of Kubernetes changes.
module kubeAudit 'aks-audit.bicep' = if (!empty(clusterName)) {
  name: 'accessdrift-kube-audit'
  scope: resourceGroup(empty(clusterResourceGroup) ? resourceGroupName : clusterResourceGroup)
  params: {
    clusterName: clusterName
    eventHubAuthorizationRuleId: hub.outputs.diagnosticsRuleId
    hubName: hubName
  }
}

// Reader on the subscription, for the inventory (`[azure]`): it lists role assignments, custom
// role definitions, user-assigned identities and their federated credentials, and reads the
// managed cluster. Read-only; repeat it for every subscription listed in `[azure] subscriptions`.
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource inventoryReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, readerRoleId, 'accessdrift-inventory')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: hub.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

output clientId string = hub.outputs.clientId
output tenantId string = tenant().tenantId
output eventHubsNamespace string = hub.outputs.namespaceHost
output eventHub string = hubName
output consumerGroup string = consumerGroupName
